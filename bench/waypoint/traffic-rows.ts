import type { FeatureWaypoint } from './request-identity';

/**
 * The waypoint bench's traffic-management rows: each its own waypoint process with the
 * plain row's route and policy plus one feature configured but never triggered (the app
 * always answers 200 at once), so each row's requests/s against the plain `waypoint` row
 * is the cost of having that feature on:
 *  - `wp-retry`: the HTTPRoute rule has a Gateway API retry (3 attempts on 5xx codes);
 *  - `wp-circuit-breaker`: a DestinationRule connectionPool with limits never reached;
 *  - `wp-outlier`: DestinationRule outlierDetection with thresholds never reached;
 *  - `wp-lb-round-robin`: DestinationRule loadBalancer ROUND_ROBIN;
 *  - `wp-rate-limit`: a LocalRateLimit on the Service whose bucket never runs dry;
 *  - `wp-fault`: a VirtualService (in place of the HTTPRoute, which would take precedence)
 *    whose route injects a delay and an abort at 0%, with retries off so that Istio's
 *    default retry policy (which buffers bodies) does not add its own cost to the row.
 */
export function trafficRows(l7For: (service: string) => readonly Record<string, unknown>[]): FeatureWaypoint[] {
  const dr = (name: string, trafficPolicy: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'bench' }, spec: { host: 'reviews', trafficPolicy } });
  const row = (key: string, i: number, config: (service: string) => readonly Record<string, unknown>[]): FeatureWaypoint => {
    const service = `reviews-${key}`;
    return { row: `wp-${key}`, name: `wp-${key}`, service, ipHost: 40 + i, vipHost: 120 + i, config: config(service), env: {}, headers: {} };
  };
  return [
    row('retry', 0, (s) =>
      l7For(s).map((o) => {
        if (o['kind'] !== 'HTTPRoute') return o;
        const spec = o['spec'] as { rules: Record<string, unknown>[] };
        return { ...o, spec: { ...spec, rules: spec.rules.map((r) => ({ ...r, retry: { attempts: 3, codes: [500, 502, 503, 504] } })) } };
      }),
    ),
    row('circuit-breaker', 1, (s) => [...l7For(s), dr(`cb-${s}`, { connectionPool: { tcp: { maxConnections: 100_000 }, http: { http1MaxPendingRequests: 100_000, http2MaxRequests: 100_000, maxRetries: 100 } } })]),
    row('outlier', 2, (s) => [...l7For(s), dr(`od-${s}`, { outlierDetection: { consecutive5xxErrors: 1000, consecutiveGatewayErrors: 1000, interval: '1s', baseEjectionTime: '30s' } })]),
    row('lb-round-robin', 3, (s) => [...l7For(s), dr(`lb-${s}`, { loadBalancer: { simple: 'ROUND_ROBIN' } })]),
    row('rate-limit', 4, (s) => [
      ...l7For(s),
      { apiVersion: 'traffic.ztunnel-ts.io/v1alpha1', kind: 'LocalRateLimit', metadata: { name: `rl-${s}`, namespace: 'bench' }, spec: { targetRefs: [{ kind: 'Service', name: s }], tokenBucket: { maxTokens: 1_000_000_000, fillInterval: '1s' } } },
    ]),
    row('fault', 5, (s) => [
      ...l7For(s).filter((o) => o['kind'] !== 'HTTPRoute'),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: `fault-${s}`, namespace: 'bench' },
        spec: {
          hosts: [`${s}.bench.svc.cluster.local`],
          http: [{ match: [{ uri: { prefix: '/bench' } }], route: [{ destination: { host: 'reviews.bench.svc.cluster.local', port: { number: 80 } } }], retries: { attempts: 0 }, fault: { delay: { fixedDelay: '1s', percentage: { value: 0 } }, abort: { httpStatus: 503, percentage: { value: 0 } } } }],
        },
      },
    ]),
  ];
}
