import { Counter, Histogram, type Registry } from 'prom-client';
import type { ResponseFlag } from '../errors';
import { TRAFFIC_LABELS, buildTrafficLabels, type TrafficLabelName } from './tcp-metrics';
import type { SpiffeId } from '../identity/spiffe';
import type { Service, Workload } from '../state/types';

/**
 * Istio's standard request labels (Envoy stats filter), in Istio's order: the TCP set up
 * to request_protocol, then response_code and grpc_response_status, then the flags and
 * security policy (no locality labels).
 */
export const REQUEST_LABELS = [
  ...(TRAFFIC_LABELS.slice(0, TRAFFIC_LABELS.indexOf('request_protocol') + 1) as RequestLabelName[]),
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as readonly RequestLabelName[];

export type RequestLabelName = Exclude<TrafficLabelName, 'source_region' | 'source_zone' | 'destination_region' | 'destination_zone'> | 'response_code' | 'grpc_response_status';
export type RequestLabels = Record<RequestLabelName, string>;

/** Istio's duration buckets (ms). */
export const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's size buckets (bytes): powers of ten. */
export const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

/** Everything one request's series are described by; identities only from verified certificates. */
export interface RequestRecord {
  readonly reporter: 'waypoint' | 'source' | 'destination';
  readonly srcWorkload: Workload | null;
  readonly srcIdentity: SpiffeId | null;
  /** The backend Service the request went to (or the Service dialled when none was chosen). */
  readonly dstService: Service | null;
  readonly dstWorkload: Workload | null;
  readonly dstIdentity: SpiffeId | null;
  readonly protocol: 'http' | 'grpc';
  readonly responseCode: number;
  /** gRPC status from the response trailers (or headers); null for non-gRPC. */
  readonly grpcStatus: string | null;
  /** Envoy response flags ("-" = none). */
  readonly flags: string;
  readonly mtls: boolean;
  readonly durationMs: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly requestMessages: number;
  readonly responseMessages: number;
}

/** The TCP label values for the same parties (one builder for both), with the request's own labels. */
export function buildRequestLabels(r: RequestRecord): RequestLabels {
  const t = buildTrafficLabels(
    {
      direction: 'inbound',
      src: NO_ADDR,
      dst: NO_ADDR,
      hboneAddr: null,
      srcWorkload: r.srcWorkload,
      dstWorkload: r.dstWorkload,
      dstService: r.dstService,
      srcIdentity: r.srcIdentity,
      dstIdentity: r.dstIdentity,
      mtls: r.mtls,
    },
    r.flags as ResponseFlag,
  );
  const out = {} as RequestLabels;
  for (const n of REQUEST_LABELS) {
    if (n === 'response_code' || n === 'grpc_response_status') continue;
    out[n] = t[n];
  }
  out.reporter = r.reporter;
  out.request_protocol = r.protocol;
  out.response_code = String(r.responseCode);
  out.grpc_response_status = r.grpcStatus ?? '';
  return out;
}

const NO_ADDR = { ip: '0.0.0.0', port: 0, family: 4 } as const;

/**
 * Istio's request metrics on the registry passed in: one increment of each family per
 * completed request (gRPC message counters only for gRPC). Series naming a workload that
 * left the state are removed, as for the TCP families.
 */
export class RequestMetrics {
  readonly requests: Counter<RequestLabelName>;
  readonly duration: Histogram<RequestLabelName>;
  readonly requestBytes: Histogram<RequestLabelName>;
  readonly responseBytes: Histogram<RequestLabelName>;
  readonly requestMessages: Counter<RequestLabelName>;
  readonly responseMessages: Counter<RequestLabelName>;
  private readonly seriesByUid = new Map<string, Map<string, RequestLabels>>();

  constructor(registry: Registry) {
    const labelNames = [...REQUEST_LABELS];
    const registers = [registry];
    this.requests = new Counter({ name: 'istio_requests_total', help: 'Total number of requests handled', labelNames, registers });
    this.duration = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'Duration of requests in milliseconds', labelNames, registers, buckets: DURATION_BUCKETS_MS });
    this.requestBytes = new Histogram({ name: 'istio_request_bytes', help: 'Size of HTTP request bodies and headers in bytes', labelNames, registers, buckets: SIZE_BUCKETS });
    this.responseBytes = new Histogram({ name: 'istio_response_bytes', help: 'Size of HTTP response bodies and headers in bytes', labelNames, registers, buckets: SIZE_BUCKETS });
    this.requestMessages = new Counter({ name: 'istio_request_messages_total', help: 'Total number of gRPC messages sent by clients', labelNames, registers });
    this.responseMessages = new Counter({ name: 'istio_response_messages_total', help: 'Total number of gRPC messages sent by servers', labelNames, registers });
  }

  record(r: RequestRecord): RequestLabels {
    const labels = buildRequestLabels(r);
    this.track(r, labels);
    this.requests.labels(labels).inc();
    this.duration.labels(labels).observe(r.durationMs);
    this.requestBytes.labels(labels).observe(r.requestBytes);
    this.responseBytes.labels(labels).observe(r.responseBytes);
    if (r.protocol === 'grpc') {
      this.requestMessages.labels(labels).inc(r.requestMessages);
      this.responseMessages.labels(labels).inc(r.responseMessages);
    }
    return labels;
  }

  /** Drops every series that names this workload (it left the state). */
  removeWorkload(w: Pick<Workload, 'uid'>): number {
    const sets = this.seriesByUid.get(w.uid);
    if (!sets) return 0;
    this.seriesByUid.delete(w.uid);
    for (const labels of sets.values()) {
      for (const m of [this.requests, this.duration, this.requestBytes, this.responseBytes, this.requestMessages, this.responseMessages]) m.remove(labels);
    }
    return sets.size;
  }

  private track(r: RequestRecord, labels: RequestLabels): void {
    for (const w of [r.srcWorkload, r.dstWorkload]) {
      if (!w) continue;
      let m = this.seriesByUid.get(w.uid);
      if (!m) this.seriesByUid.set(w.uid, (m = new Map()));
      const key = REQUEST_LABELS.map((n) => labels[n]).join('\u0000');
      if (!m.has(key)) m.set(key, labels);
    }
  }
}
