import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import type { Reason, ResponseFlag } from '../errors';
import type { ConnectionContext, Direction } from './connection-context';
import type { Workload } from '../state/types';

/** Istio's CommonTrafficLabels, in Istio's order, then the four locality labels ztunnel adds. */
export const TRAFFIC_LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
  'source_region',
  'source_zone',
  'destination_region',
  'destination_zone',
] as const;

export type TrafficLabelName = (typeof TRAFFIC_LABELS)[number];
export type TrafficLabels = Record<TrafficLabelName, string>;

const UNKNOWN = 'unknown';

function v(s: string | null | undefined): string {
  return s ? s : UNKNOWN;
}

export function reporterOf(direction: Direction): 'source' | 'destination' {
  return direction === 'outbound' ? 'source' : 'destination';
}

/**
 * Builds the label set of one connection. Unset values render "unknown" as in Istio.
 * `source_principal` / `destination_principal` come only from the context's verified
 * identities (never from xDS data).
 */
export function buildTrafficLabels(ctx: ConnectionContext, flag: ResponseFlag): TrafficLabels {
  const s = ctx.srcWorkload;
  const d = ctx.dstWorkload;
  const svc = ctx.dstService;
  return {
    reporter: reporterOf(ctx.direction),
    source_workload: v(s?.workloadName || s?.name),
    source_canonical_service: v(s?.canonicalName),
    source_canonical_revision: v(s?.canonicalRevision),
    source_workload_namespace: v(s?.namespace),
    source_principal: v(ctx.srcIdentity?.toString()),
    source_app: v(s?.canonicalName),
    source_version: v(s?.canonicalRevision),
    source_cluster: v(s?.clusterId),
    destination_service: v(svc?.hostname),
    destination_service_namespace: v(svc?.namespace),
    destination_service_name: v(svc?.name),
    destination_workload: v(d?.workloadName || d?.name),
    destination_canonical_service: v(d?.canonicalName),
    destination_canonical_revision: v(d?.canonicalRevision),
    destination_workload_namespace: v(d?.namespace),
    destination_principal: v(ctx.dstIdentity?.toString()),
    destination_app: v(d?.canonicalName),
    destination_version: v(d?.canonicalRevision),
    destination_cluster: v(d?.clusterId),
    request_protocol: 'tcp',
    response_flags: flag,
    connection_security_policy: ctx.mtls ? 'mutual_tls' : UNKNOWN,
    source_region: v(s?.locality.region),
    source_zone: v(s?.locality.zone),
    destination_region: v(d?.locality.region),
    destination_zone: v(d?.locality.zone),
  };
}

/** One series of the istio_tcp families, shared by every connection with these labels. */
export interface TrafficSeries {
  readonly labels: TrafficLabels;
  /** The label values joined: the series' key in every family. */
  readonly key: string;
}

/** prom-client's shape for one series' value (what `get()` returns per series). */
interface SeriesValue {
  value: number;
  readonly labels: TrafficLabels;
}

/**
 * A counter family of the 27 traffic labels, keyed by TrafficSeries. prom-client's Counter
 * hashes and validates all 27 labels on every inc() (four times per connection, the largest
 * share of the telemetry in connection-rate profiles); here the key is built once when a
 * series is first seen. Registered on the registry like a prom-client metric (name, help,
 * type, `get()` in prom-client's format, `reset()`), so /metrics, the worker threads'
 * aggregation and the text format are prom-client's own.
 */
class TrafficCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum' as const;
  private readonly values = new Map<string, SeriesValue>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** Adds `n`; false when this created the series (it was new, or removed meanwhile). */
  inc(s: TrafficSeries, n: number): boolean {
    const e = this.values.get(s.key);
    if (e) {
      e.value += n;
      return true;
    }
    this.values.set(s.key, { value: n, labels: s.labels });
    return false;
  }

  remove(key: string): void {
    this.values.delete(key);
  }

  get(): Promise<{ name: string; help: string; type: 'counter'; values: SeriesValue[]; aggregator: 'sum' }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: [...this.values.values()], aggregator: this.aggregator });
  }

  reset(): void {
    this.values.clear();
  }
}

/**
 * The node proxy's connection metrics on the registry passed in (never the global one).
 * Beyond ztunnel: series that name a workload which left the state are removed
 * (ztunnel's series only grow, until a busy node's scrape is too large), and every
 * failure also counts in ztunnel_ts_connection_failures_total{reporter, reason}.
 */
export class TcpMetrics {
  readonly opened: TrafficCounter;
  readonly closed: TrafficCounter;
  readonly received: TrafficCounter;
  readonly sent: TrafficCounter;
  readonly failed: TrafficCounter;
  readonly socketsOpen: Gauge<'reporter'>;
  /** socketsOpen's two series, bound once. */
  private readonly openSockets: Record<'source' | 'destination', { inc(): void; dec(): void }>;
  readonly failures: Counter<'reporter' | 'reason'>;
  /** Every series by key (connections share them), and the keys naming each workload uid, for removal. */
  private readonly series = new Map<string, TrafficSeries>();
  private readonly keysByUid = new Map<string, Set<string>>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.opened = new TrafficCounter('istio_tcp_connections_opened_total', 'The total number of TCP connections opened', registry);
    this.closed = new TrafficCounter('istio_tcp_connections_closed_total', 'The total number of TCP connections closed', registry);
    this.received = new TrafficCounter('istio_tcp_received_bytes_total', 'The size of total bytes received during request in case of a TCP connection', registry);
    this.sent = new TrafficCounter('istio_tcp_sent_bytes_total', 'The size of total bytes sent during response in case of a TCP connection', registry);
    this.failed = new TrafficCounter('istio_tcp_connections_failed_total', 'The total number of TCP connections that failed', registry);
    this.socketsOpen = new Gauge({ name: 'istio_tcp_sockets_open', help: 'The number of proxied TCP connections currently open', labelNames: ['reporter'], registers });
    this.failures = new Counter({ name: 'ztunnel_ts_connection_failures_total', help: 'Failed connections by reporter and reason code (src/errors.ts), including early failures that have no istio_tcp series', labelNames: ['reporter', 'reason'], registers });
    for (const r of ['source', 'destination']) this.socketsOpen.labels(r).set(0);
    this.openSockets = { source: this.socketsOpen.labels('source'), destination: this.socketsOpen.labels('destination') };
  }

  /** Counts the open; returns the connection's series (labels with response flag "-"). */
  open(ctx: ConnectionContext): TrafficSeries {
    const s = this.seriesOf(ctx, buildTrafficLabels(ctx, '-'));
    this.count(this.opened, ctx, s, 1);
    this.openSockets[reporterOf(ctx.direction)].inc();
    return s;
  }

  /**
   * Adds a connection's byte deltas (at close and from the shared flusher, never per chunk).
   * Nothing per connection but the shared series: no label-bound children kept by idle connections.
   */
  addBytes(ctx: ConnectionContext, s: TrafficSeries, received: number, sent: number): void {
    if (received > 0) this.count(this.received, ctx, s, received);
    if (sent > 0) this.count(this.sent, ctx, s, sent);
  }

  /** Counts the close (with its flag) once; failure flags also count as failed. */
  close(ctx: ConnectionContext, opened: TrafficSeries, flag: ResponseFlag, reason: Reason | null): void {
    const s = flag === opened.labels.response_flags ? opened : this.seriesOf(ctx, { ...opened.labels, response_flags: flag });
    this.count(this.closed, ctx, s, 1);
    if (flag !== '-') this.count(this.failed, ctx, s, 1);
    this.openSockets[reporterOf(ctx.direction)].dec();
    if (reason && flag !== '-') this.failures.labels(opened.labels.reporter, reason).inc();
  }

  /** An early failure: no istio_tcp series (as ztunnel), only the reason counter. */
  earlyFailure(direction: Direction, reason: Reason): void {
    this.failures.labels(reporterOf(direction), reason).inc();
  }

  /** Drops every series that names this workload (it left the state). */
  removeWorkload(w: Pick<Workload, 'uid'>): number {
    const keys = this.keysByUid.get(w.uid);
    if (!keys) return 0;
    this.keysByUid.delete(w.uid);
    for (const key of keys) {
      this.series.delete(key);
      for (const c of [this.opened, this.closed, this.received, this.sent, this.failed]) c.remove(key);
    }
    return keys.size;
  }

  /** The shared series for these labels (built once per distinct label set, then looked up by key). */
  private seriesOf(ctx: ConnectionContext, labels: TrafficLabels): TrafficSeries {
    let key = labels[TRAFFIC_LABELS[0]];
    for (let i = 1; i < TRAFFIC_LABELS.length; i++) key += '\u0000' + labels[TRAFFIC_LABELS[i] as TrafficLabelName];
    let s = this.series.get(key);
    if (!s) {
      s = { labels, key };
      this.series.set(key, s);
      this.track(ctx, key);
    }
    return s;
  }

  /** Increments; a series created here (first use, or removed while a connection still held it) is indexed for removal again. */
  private count(c: TrafficCounter, ctx: ConnectionContext, s: TrafficSeries, n: number): void {
    if (c.inc(s, n)) return;
    if (!this.series.has(s.key)) this.series.set(s.key, s);
    this.track(ctx, s.key);
  }

  private track(ctx: ConnectionContext, key: string): void {
    for (const w of [ctx.srcWorkload, ctx.dstWorkload]) {
      if (!w) continue;
      let keys = this.keysByUid.get(w.uid);
      if (!keys) this.keysByUid.set(w.uid, (keys = new Set()));
      keys.add(key);
    }
  }
}
