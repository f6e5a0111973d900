import test from 'ava';
import { parseL7Config } from '../../../src/waypoint/config/parse';
import { ISTIO_DEFAULT_RETRY } from '../../../src/waypoint/traffic/plan';
import { TokenBucket } from '../../../src/waypoint/traffic/rate-limit';
import { backoffMs, isRetriable, retryBudget } from '../../../src/waypoint/traffic/retry';
import type { RetryPolicy } from '../../../src/waypoint/traffic/types';

function parse(text: string): ReturnType<typeof parseL7Config> {
  return parseL7Config([{ text, source: 'tm.yaml' }]);
}

function errorLines(text: string): string[] {
  const r = parse(text);
  if (r.ok) throw new Error('expected errors');
  return r.errors.map((e) => `${e.line}:${e.column}: ${e.path}: ${e.message}`);
}

test('a VirtualService with match, weighted subsets, retries, timeout and fault is read in full', (t) => {
  const r = parse(`apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews]
  http:
  - name: canary
    match:
    - uri: { prefix: /api }
      headers: { x-user: { exact: bob } }
      queryParams: { v: { regex: "[0-9]+" } }
      method: { exact: GET }
    route:
    - { destination: { host: reviews, subset: v2, port: { number: 9080 } }, weight: 25 }
    - { destination: { host: reviews, subset: v1 }, weight: 75 }
    retries: { attempts: 3, perTryTimeout: 1.5s, retryOn: "5xx,gateway-error,retriable-4xx,503,unavailable" }
    timeout: 10s
    fault:
      delay: { fixedDelay: 250ms, percentage: { value: 12.5 } }
      abort: { grpcStatus: DEADLINE_EXCEEDED, percent: 10 }
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  const vs = r.value.traffic.virtualServices[0]!;
  t.deepEqual(vs.hosts, ['reviews']);
  const h = vs.http[0]!;
  t.is(h.name, 'canary');
  t.deepEqual(
    h.route.map((d) => [d.subset, d.port, d.weight]),
    [
      ['v2', 9080, 25],
      ['v1', null, 75],
    ],
  );
  t.like(h.retries, { attempts: 3, perTryTimeoutMs: 1500, retryOn: ['5xx', 'gateway-error', 'retriable-4xx', 'retriable-status-codes', 'unavailable'], statusCodes: [503] });
  t.is(h.timeoutMs, 10_000);
  t.deepEqual(h.fault, { delay: { fixedDelayMs: 250, percent: 12.5 }, abort: { httpStatus: null, grpcStatus: 4, percent: 10 } });
  t.like(h.match[0], { uri: { kind: 'prefix', value: '/api' }, method: { kind: 'exact', value: 'GET' }, headers: [{ name: 'x-user', match: { kind: 'exact', value: 'bob' } }] });
});

test('VirtualService errors name the field, its position and what is supported', (t) => {
  const lines = errorLines(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r }
spec:
  hosts: [r]
  tcp: []
  http:
  - route: [{ destination: { host: r } }]
    retries: { attempts: 2, retryOn: "5xx,sometimes" }
    timeout: soon
    fault: { abort: { httpStatus: 503, grpcStatus: UNAVAILABLE } }
    mirror: { host: m }
`);
  const has = (re: RegExp): boolean => lines.some((l) => re.test(l));
  t.true(has(/^6:3: .*tcp routes are not supported by the waypoint/), lines.join('\n'));
  t.true(has(/^9:.*retryOn "sometimes" is not supported; supported: 5xx, gateway-error, reset, connect-failure/), lines.join('\n'));
  t.true(has(/^10:.*"soon" is not a duration/), lines.join('\n'));
  t.true(has(/exactly one of httpStatus, grpcStatus must be set/), lines.join('\n'));
  t.true(has(/^12:.*mirror is not supported by this waypoint; supported HTTP route fields: name, match, route, retries, timeout, fault/), lines.join('\n'));
});

test('a DestinationRule with connection pool, outlier detection (Istio defaults), load balancer and subsets', (t) => {
  const r = parse(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 10, connectTimeout: 500ms }
      http: { http1MaxPendingRequests: 5, http2MaxRequests: 100, maxRequestsPerConnection: 0, maxRetries: 3, idleTimeout: 30s }
    outlierDetection: { consecutive5xxErrors: 7 }
    loadBalancer: { simple: LEAST_CONN }
  subsets:
  - name: v2
    labels: { version: v2 }
    trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: user } } } }
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  const dr = r.value.traffic.destinationRules[0]!;
  t.deepEqual(dr.trafficPolicy?.connectionPool, { maxConnections: 10, connectTimeoutMs: 500, http1MaxPendingRequests: 5, http2MaxRequests: 100, maxRequestsPerConnection: null, maxRetries: 3, idleTimeoutMs: 30_000 });
  t.deepEqual(dr.trafficPolicy?.outlierDetection, { consecutive5xxErrors: 7, consecutiveGatewayErrors: 0, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 });
  t.deepEqual(dr.trafficPolicy?.loadBalancer, { kind: 'simple', simple: 'LEAST_REQUEST' });
  t.deepEqual(dr.subsets[0], { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { connectionPool: null, outlierDetection: null, loadBalancer: { kind: 'hash', by: { cookie: 'user' } } } });
});

test('DestinationRule errors: unknown subset labels, unsupported fields, duplicate subsets', (t) => {
  const lines = errorLines(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: d }
spec:
  host: d
  trafficPolicy:
    tls: { mode: ISTIO_MUTUAL }
    loadBalancer: { simple: PASSTHROUGH }
  subsets:
  - { name: a, labels: { tier: gold } }
  - { name: a }
`);
  const has = (re: RegExp): boolean => lines.some((l) => re.test(l));
  t.true(has(/tls is not supported by this waypoint/), lines.join('\n'));
  t.true(has(/PASSTHROUGH is not supported/), lines.join('\n'));
  t.true(has(/label "tier" is not known to the waypoint's workload model; subsets can select on: app, /), lines.join('\n'));
  t.true(has(/^11:.*duplicate subset "a"/), lines.join('\n'));
});

test('LocalRateLimit: targets and token bucket; errors for a bad group, sectionName on a Service, a missing fillInterval', (t) => {
  const r = parse(`apiVersion: traffic.ztunnel-ts.io/v1alpha1
kind: LocalRateLimit
metadata: { name: rl, namespace: shop }
spec:
  targetRefs:
  - { kind: Service, name: reviews }
  - { group: networking.istio.io, kind: VirtualService, name: vs, sectionName: api }
  tokenBucket: { maxTokens: 100, fillInterval: 1s }
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.deepEqual(r.value.traffic.rateLimits[0]!.targets, [
    { kind: 'Service', name: 'reviews', namespace: 'shop' },
    { kind: 'VirtualService', name: 'vs', namespace: 'shop', sectionName: 'api' },
  ]);
  t.like(r.value.traffic.rateLimits[0], { maxTokens: 100, tokensPerFill: 100, fillIntervalMs: 1000 });
  const lines = errorLines(`apiVersion: traffic.ztunnel-ts.io/v1alpha1
kind: LocalRateLimit
metadata: { name: rl }
spec:
  targetRefs:
  - { group: apps, kind: Service, name: a }
  - { kind: Service, name: b, sectionName: http }
  tokenBucket: { maxTokens: 1 }
`);
  t.true(lines.some((l) => l.startsWith('6:') && l.includes('kind Service is in group ""')), lines.join('\n'));
  t.true(lines.some((l) => l.startsWith('7:') && l.includes('sectionName names an http route of a VirtualService')), lines.join('\n'));
  t.true(lines.some((l) => l.includes('fillInterval is required')), lines.join('\n'));
});

test('an HTTPRoute rule retry is read (attempts, codes, backoff)', (t) => {
  const r = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ group: "", kind: Service, name: s, port: 80 }]
  rules:
  - backendRefs: [{ name: s, port: 80 }]
    retry: { attempts: 4, codes: [502, 503], backoff: 50ms }
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.deepEqual(r.value.routes[0]!.rules[0]!.retry, { attempts: 4, codes: [502, 503], backoffMs: 50 });
});

const P = (retryOn: RetryPolicy['retryOn'], statusCodes: number[] = []): RetryPolicy => ({ ...ISTIO_DEFAULT_RETRY, retryOn, statusCodes });

test('retry conditions follow Envoy: 5xx covers resets and connect failures; gateway-error is 502/503/504 and per-try timeouts', (t) => {
  const resp = (status: number, grpcStatus: number | null = null) => ({ kind: 'response' as const, status, grpcStatus });
  t.true(isRetriable(P(['5xx']), resp(500)));
  t.true(isRetriable(P(['5xx']), { kind: 'reset' }));
  t.true(isRetriable(P(['5xx']), { kind: 'connect-failure' }));
  t.false(isRetriable(P(['5xx']), resp(429)));
  t.false(isRetriable(P(['gateway-error']), resp(500)));
  t.true(isRetriable(P(['gateway-error']), resp(504)));
  t.true(isRetriable(P(['gateway-error']), { kind: 'per-try-timeout' }));
  t.false(isRetriable(P(['connect-failure']), { kind: 'reset' }));
  t.true(isRetriable(P(['retriable-4xx']), resp(409)));
  t.true(isRetriable(P(['retriable-status-codes'], [429]), resp(429)));
  t.true(isRetriable(P(['unavailable']), resp(200, 14)));
  t.true(isRetriable(P(['resource-exhausted']), resp(200, 8)));
  t.false(isRetriable(P(['unavailable']), resp(200, 4)));
  t.true(isRetriable(ISTIO_DEFAULT_RETRY, resp(503)));
  t.true(isRetriable(ISTIO_DEFAULT_RETRY, resp(200, 1)));
  t.false(isRetriable(ISTIO_DEFAULT_RETRY, resp(502)));
});

test('back-off is jittered under an exponential ceiling capped at 10× the base; the budget is 20% of active requests, at least 3, capped by maxRetries', (t) => {
  const p = { ...ISTIO_DEFAULT_RETRY, backoffBaseMs: 25 };
  t.is(backoffMs(p, 1, () => 0.999), 49);
  t.is(backoffMs(p, 2, () => 0.5), 50);
  t.is(backoffMs(p, 6, () => 0.999), 249);
  t.is(backoffMs(p, 1, () => 0), 0);
  t.is(retryBudget(1, null), 3);
  t.is(retryBudget(100, null), 20);
  t.is(retryBudget(100, 5), 5);
  t.is(retryBudget(100, 0), 0);
});

test('token bucket: starts full, refills tokensPerFill per interval up to maxTokens, reports x-ratelimit-* headers', (t) => {
  const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1000 }, 0);
  t.deepEqual([b.take(0), b.take(1), b.take(2), b.take(3)], [true, true, true, false]);
  t.deepEqual(b.headers(400), { 'x-ratelimit-limit': '3, 3;w=1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' });
  t.true(b.take(1000));
  t.true(b.take(1001));
  t.false(b.take(1002));
  t.is((b.dump(10_000) as { tokens: number }).tokens, 3, 'never above maxTokens');
});
