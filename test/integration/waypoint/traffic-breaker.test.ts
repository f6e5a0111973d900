import test from 'ava';
import * as http from 'node:http';
import { WaypointMesh, get } from './harness';
import { trafficMesh, adminJson, applyL7, logsSince, virtualService, vsTo } from './traffic-backend';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';

/**
 * Circuit breaking (DestinationRule connectionPool) and outlier detection end to end,
 * against apps that answer slowly or with 5xx on command.
 */
const m = new WaypointMesh();

const DR = (host: string, policy: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: ${host}
  trafficPolicy:
${policy}`;

const h = trafficMesh(test, m);

/** `n` requests at once, each on its own client connection. */
function burst(n: number, path: string): Promise<{ status: number; text: string }[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => get(h.fwd, `${path}${i}`, {}, { agent: new http.Agent({ keepAlive: false }) })));
}

/** `server` routed to server-v1 without retries, and a DestinationRule for server-v1. */
const TO_V1 = (policy: string): string => `${vsTo('server-v1', '    retries: { attempts: 0 }\n')}---
${DR('server-v1', policy)}`;

test.serial('maxConnections 1 + http1MaxPendingRequests 1: one in flight, one queued, the rest 503 UO; then it recovers', async (t) => {
  await applyL7(m, TO_V1('    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }\n'));
  h.v1.fallback = { status: 200, delayMs: 300 };
  const from = m.requestLogs().length;
  const rs = await burst(5, '/cb');
  const ok = rs.filter((r) => r.status === 200).length;
  const overflow = rs.filter((r) => r.status === 503);
  t.is(ok, 2, rs.map((r) => r.status).join(' '));
  t.is(overflow.length, 3);
  t.true(overflow.every((r) => r.text.endsWith('reset reason: overflow')));
  t.is(h.v1.maxActive, 1, 'the backend never saw two requests at once');
  t.is(logsSince(m, from).filter((l) => l['response_flags'] === 'UO').length, 3);
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_circuit_breaker_overflows_total', { limit: 'http1MaxPendingRequests' }), 3);
  t.is(sumSamples(metrics, 'istio_requests_total', { response_flags: 'UO', response_code: '503' }), 3);
  // Recovered: with the burst over, sequential requests all pass and the counters are back to zero.
  h.v1.fallback = { status: 200 };
  for (let i = 0; i < 5; i++) t.is((await get(h.fwd, `/after${i}`)).status, 200);
  const dump = await adminJson(m, '/config_dump');
  const c = dump.traffic.clusters.find((x: { cluster: string }) => x.cluster === 'server-v1.default.svc.cluster.local|80|');
  t.like(c, { active: 0, activeHttp1: 0, pending: 0, connectionPool: { maxConnections: 1, http1MaxPendingRequests: 1 } });
});

test.serial('http2MaxRequests 2: the third concurrent request overflows at once (no queue)', async (t) => {
  await applyL7(m, TO_V1('    connectionPool: { http: { http2MaxRequests: 2 } }\n'));
  h.v1.fallback = { status: 200, delayMs: 300 };
  const rs = await burst(5, '/h2max');
  t.is(rs.filter((r) => r.status === 200).length, 2, rs.map((r) => r.status).join(' '));
  t.is(rs.filter((r) => r.status === 503).length, 3);
  t.is(h.v1.maxActive, 2);
});

test.serial('maxRequestsPerConnection 1: every request gets a fresh upstream connection', async (t) => {
  await applyL7(m, TO_V1('    connectionPool: { http: { maxRequestsPerConnection: 1 } }\n'));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 4; i++) t.is((await get(h.fwd, `/pc${i}`, {}, { agent })).status, 200);
  t.is(new Set(h.v1.ports).size, 4, 'four requests, four upstream connections');
});

test.serial('idleTimeout closes an upstream connection left idle; without it the connection is reused', async (t) => {
  await applyL7(m, TO_V1('    connectionPool: { http: { idleTimeout: 200ms } }\n'));
  t.is((await get(h.fwd, '/idle1')).status, 200);
  await new Promise((r) => setTimeout(r, 600));
  t.is((await get(h.fwd, '/idle2')).status, 200);
  t.not(h.v1.ports[0], h.v1.ports[1], 'the first connection was closed after 200ms idle');
  h.v1.reset();
  await applyL7(m, TO_V1('    connectionPool: { http: { idleTimeout: 3s } }\n'));
  t.is((await get(h.fwd, '/keep1')).status, 200);
  await new Promise((r) => setTimeout(r, 600));
  t.is((await get(h.fwd, '/keep2')).status, 200);
  t.is(h.v1.ports[0], h.v1.ports[1], 'idle for less than idleTimeout: reused');
});

test.serial('outlier detection ejects an endpoint after consecutive 5xx, reports it, and returns it after the ejection time', async (t) => {
  await applyL7(m, DR('server', '    outlierDetection: { consecutive5xxErrors: 3, interval: 100ms, baseEjectionTime: 5s, maxEjectionPercent: 100 }\n'));
  h.v1.fallback = { status: 500 };
  const codes: number[] = [];
  for (let i = 0; i < 30; i++) codes.push((await get(h.fwd, `/od${i}`)).status);
  t.is(codes.filter((c) => c === 500).length, 3, `v1 answered 500 three times, then left the load balancer: ${codes.join(' ')}`);
  t.is(h.v1.requests, 3);
  t.is(h.v2.requests, 27);
  const metrics = await m.wpMetrics();
  const cluster = 'server.default.svc.cluster.local|80|';
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_outlier_ejections_total', { cluster }), 1);
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_outlier_ejected_endpoints', { cluster }), 1);
  const dump = await adminJson(m, '/config_dump');
  const c = dump.traffic.clusters.find((x: { cluster: string }) => x.cluster === cluster);
  const ejected = c.endpoints.filter((e: { ejected: boolean }) => e.ejected);
  t.is(ejected.length, 1);
  t.true(String(ejected[0].endpoint).includes(`${m.V1}:8080`));
  t.like(c.outlierDetection, { consecutive5xxErrors: 3, baseEjectionTimeMs: 5000, maxEjectionPercent: 100 });
  // Healthy again; after the ejection time (5s: long enough that a loaded machine cannot outrun it above) the interval sweep returns it.
  h.v1.fallback = { status: 200 };
  await waitUntil(() => m.wpLogs.find((l) => l['msg'] === 'outlier detection returned an endpoint to the load balancer').length > 0, 10_000, () => 'endpoint returned');
  t.is(sumSamples(await m.wpMetrics(), 'ztunnel_ts_waypoint_outlier_ejected_endpoints', { cluster }), 0);
  for (let i = 0; i < 20; i++) t.is((await get(h.fwd, `/back${i}`)).status, 200);
  t.true(h.v1.requests > 3, `v1 serves again (${h.v1.requests - 3} of 20)`);
});

test.serial('maxEjectionPercent caps ejections (one endpoint is always allowed); minHealthPercent stands outlier detection aside', async (t) => {
  await applyL7(m, DR('server', '    outlierDetection: { consecutive5xxErrors: 1, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 10 }\n'));
  h.v1.fallback = { status: 500 };
  h.v2.fallback = { status: 500 };
  for (let i = 0; i < 10; i++) await get(h.fwd, `/cap${i}`);
  const dump = await adminJson(m, '/config_dump');
  const c = dump.traffic.clusters.find((x: { cluster: string }) => x.cluster === 'server.default.svc.cluster.local|80|');
  t.is(c.endpoints.filter((e: { ejected: boolean }) => e.ejected).length, 1, '10% of 2 endpoints still allows one');
  // With minHealthPercent 100, one ejected endpoint out of two drops health to 50%: both serve.
  await applyL7(m, DR('server', '    outlierDetection: { consecutive5xxErrors: 1, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 10, minHealthPercent: 100 }\n'));
  h.v1.reset();
  h.v2.reset();
  for (let i = 0; i < 20; i++) await get(h.fwd, `/panic${i}`);
  t.true(h.v1.requests > 0 && h.v2.requests > 0, `v1 ${h.v1.requests} v2 ${h.v2.requests}`);
});

test.serial('a subset-level connectionPool applies to that subset only: v1 overflows at its limit, v2 in the same burst does not', async (t) => {
  await applyL7(
    m,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: server, namespace: default }
spec:
  host: server
  subsets:
  - name: v1
    labels: { app: server-v1-app }
    trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }
  - { name: v2, labels: { service.istio.io/canonical-name: server-v2-app } }
---
${virtualService(`  - match: [{ uri: { prefix: /sub-v1 } }]
    route: [{ destination: { host: server, subset: v1 } }]
    retries: { attempts: 0 }
  - route: [{ destination: { host: server, subset: v2 } }]
    retries: { attempts: 0 }
`)}`,
  );
  h.v1.fallback = { status: 200, delayMs: 300 };
  h.v2.fallback = { status: 200, delayMs: 300 };
  const [v1, v2] = await Promise.all([burst(5, '/sub-v1-'), burst(5, '/sub-v2-')]);
  t.deepEqual(
    v1.map((r) => r.status).sort(),
    [200, 200, 503, 503, 503],
    'subset v1: one in flight, one queued, three overflow',
  );
  t.deepEqual(
    v2.map((r) => r.status),
    Array(5).fill(200),
    'subset v2 has no limit',
  );
  t.is(h.v1.maxActive, 1);
  t.true(h.v2.maxActive > 1, 'v2 served requests concurrently');
});
