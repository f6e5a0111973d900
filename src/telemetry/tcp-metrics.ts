import { Counter, Gauge, type Registry } from 'prom-client';
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

/**
 * The node proxy's connection metrics on the registry passed in (never the global one).
 * Beyond ztunnel: series that name a workload which left the state are removed
 * (ztunnel's series only grow, until a busy node's scrape is too large), and every
 * failure also counts in ztunnel_ts_connection_failures_total{reporter, reason}.
 */
export class TcpMetrics {
  readonly opened: Counter<TrafficLabelName>;
  readonly closed: Counter<TrafficLabelName>;
  readonly received: Counter<TrafficLabelName>;
  readonly sent: Counter<TrafficLabelName>;
  readonly failed: Counter<TrafficLabelName>;
  readonly socketsOpen: Gauge<'reporter'>;
  readonly failures: Counter<'reporter' | 'reason'>;
  /** label-set key → the labels, for removal; indexed by the workload uids the set names. */
  private readonly seriesByUid = new Map<string, Map<string, TrafficLabels>>();

  constructor(registry: Registry) {
    const labelNames = [...TRAFFIC_LABELS];
    const registers = [registry];
    this.opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'The total number of TCP connections opened', labelNames, registers });
    this.closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'The total number of TCP connections closed', labelNames, registers });
    this.received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'The size of total bytes received during request in case of a TCP connection', labelNames, registers });
    this.sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'The size of total bytes sent during response in case of a TCP connection', labelNames, registers });
    this.failed = new Counter({ name: 'istio_tcp_connections_failed_total', help: 'The total number of TCP connections that failed', labelNames, registers });
    this.socketsOpen = new Gauge({ name: 'istio_tcp_sockets_open', help: 'The number of proxied TCP connections currently open', labelNames: ['reporter'], registers });
    this.failures = new Counter({ name: 'ztunnel_ts_connection_failures_total', help: 'Failed connections by reporter and reason code (src/errors.ts), including early failures that have no istio_tcp series', labelNames: ['reporter', 'reason'], registers });
    for (const r of ['source', 'destination']) this.socketsOpen.labels(r).set(0);
  }

  /** Counts the open. */
  open(ctx: ConnectionContext, labels: TrafficLabels): void {
    this.track(ctx, labels);
    this.opened.labels(labels).inc();
    this.socketsOpen.labels(labels.reporter).inc();
  }

  /**
   * Adds a connection's byte deltas (at close and from the shared flusher, never per chunk).
   * Straight on the counters rather than through label-bound children kept per connection:
   * prom-client's child is an object and a bound function per counter, held by every idle
   * connection, and looks the series up by its labels on every inc() anyway.
   */
  addBytes(labels: TrafficLabels, received: number, sent: number): void {
    if (received > 0) this.received.inc(labels, received);
    if (sent > 0) this.sent.inc(labels, sent);
  }

  /** Counts the close (with its flag) once; failure flags also count as failed. */
  close(ctx: ConnectionContext, openLabels: TrafficLabels, flag: ResponseFlag, reason: Reason | null): void {
    const labels = flag === openLabels.response_flags ? openLabels : { ...openLabels, response_flags: flag };
    if (labels !== openLabels) this.track(ctx, labels);
    this.closed.labels(labels).inc();
    if (flag !== '-') this.failed.labels(labels).inc();
    this.socketsOpen.labels(openLabels.reporter).dec();
    if (reason && flag !== '-') this.failures.labels(openLabels.reporter, reason).inc();
  }

  /** An early failure: no istio_tcp series (as ztunnel), only the reason counter. */
  earlyFailure(direction: Direction, reason: Reason): void {
    this.failures.labels(reporterOf(direction), reason).inc();
  }

  /** Drops every series that names this workload (it left the state). */
  removeWorkload(w: Pick<Workload, 'uid'>): number {
    const sets = this.seriesByUid.get(w.uid);
    if (!sets) return 0;
    this.seriesByUid.delete(w.uid);
    for (const labels of sets.values()) {
      for (const c of [this.opened, this.closed, this.received, this.sent, this.failed]) c.remove(labels);
    }
    return sets.size;
  }

  private track(ctx: ConnectionContext, labels: TrafficLabels): void {
    for (const w of [ctx.srcWorkload, ctx.dstWorkload]) {
      if (!w) continue;
      let m = this.seriesByUid.get(w.uid);
      if (!m) this.seriesByUid.set(w.uid, (m = new Map()));
      const key = TRAFFIC_LABELS.map((n) => labels[n]).join('\u0000');
      if (!m.has(key)) m.set(key, labels);
    }
  }
}
