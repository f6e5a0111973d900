import { Counter, Histogram, type Registry } from 'prom-client';
import type { Reason } from '../errors';
import type { DnsClient } from './answer';

const LABELS = ['request_query_type', 'request_protocol', 'source_canonical_service', 'source_canonical_revision'] as const;

export type DnsFailureReason = Extract<Reason, 'DNS_MALFORMED' | 'DNS_UNKNOWN_CLIENT' | 'DNS_OVERLOAD' | 'DNS_UPSTREAM_TIMEOUT' | 'DNS_UPSTREAM_UNREACHABLE'>;

/** ztunnel's DNS metric families (same names, labels and buckets), plus our failure reasons. */
export interface DnsMetrics {
  request(type: string, protocol: 'udp' | 'tcp', client: DnsClient | undefined): void;
  upstreamRequest(type: string, protocol: 'udp' | 'tcp', client: DnsClient | undefined): void;
  upstreamFailure(type: string, protocol: 'udp' | 'tcp', client: DnsClient | undefined): void;
  upstreamDuration(type: string, protocol: 'udp' | 'tcp', client: DnsClient | undefined, seconds: number): void;
  failure(reason: DnsFailureReason): void;
}

export function createDnsMetrics(registry: Registry): DnsMetrics {
  const requests = new Counter({ name: 'istio_dns_requests_total', help: 'Total number of DNS requests', labelNames: LABELS, registers: [registry] });
  const upstream = new Counter({ name: 'istio_dns_upstream_requests_total', help: 'Total number of DNS requests forwarded to upstream nameservers', labelNames: LABELS, registers: [registry] });
  const failures = new Counter({ name: 'istio_dns_upstream_failures_total', help: 'Total number of DNS requests that failed upstream', labelNames: LABELS, registers: [registry] });
  const duration = new Histogram({
    name: 'istio_dns_upstream_request_duration_seconds',
    help: 'Duration of DNS requests forwarded upstream',
    labelNames: LABELS,
    buckets: [0.0005, 0.001, 0.01, 0.1, 1, 5],
    registers: [registry],
  });
  const reasons = new Counter({ name: 'ztunnel_ts_dns_failures_total', help: 'DNS queries the proxy could not serve, by reason (see the README reason table)', labelNames: ['reason'], registers: [registry] });
  const labels = (type: string, protocol: string, c: DnsClient | undefined): Record<(typeof LABELS)[number], string> => ({
    request_query_type: type.toLowerCase(),
    request_protocol: protocol,
    source_canonical_service: c?.canonicalName || 'unknown',
    source_canonical_revision: c?.canonicalRevision || 'unknown',
  });
  return {
    request: (t, p, c) => requests.inc(labels(t, p, c)),
    upstreamRequest: (t, p, c) => upstream.inc(labels(t, p, c)),
    upstreamFailure: (t, p, c) => failures.inc(labels(t, p, c)),
    upstreamDuration: (t, p, c, s) => duration.observe(labels(t, p, c), s),
    failure: (r) => reasons.inc({ reason: r }),
  };
}
