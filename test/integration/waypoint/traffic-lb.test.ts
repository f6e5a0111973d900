import test from 'ava';
import * as http from 'node:http';
import { WaypointMesh, get } from './harness';
import { trafficMesh, adminJson, applyL7, logsSince, virtualService } from './traffic-backend';
import { sumSamples } from '../../helpers/prom-text';

/**
 * DestinationRule subsets and load balancers, and LocalRateLimit, end to end. `server`
 * has two endpoints: server-v1 (canonical name server-v1-app) and server-v2.
 */
const m = new WaypointMesh();

const SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: server, namespace: default }
spec:
  host: server
  subsets:
  - { name: v1, labels: { app: server-v1-app } }
  - { name: v2, labels: { service.istio.io/canonical-name: server-v2-app } }
`;

const DR_LB = (lb: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: server, namespace: default }
spec:
  host: server.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: ${lb}
`;

const h = trafficMesh(test, m);

/** Which app answered each of `n` sequential requests. */
async function apps(n: number, headers: Record<string, string> = {}, path = '/lb'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await get(h.fwd, `${path}${i}`, headers)).text.split(' ')[0] as string);
  return out;
}

test.serial('subsets by labels: a VirtualService sends to one subset, or splits between subsets by weight', async (t) => {
  await applyL7(
    m,
    `${SUBSETS}---
${virtualService(`  - match: [{ uri: { prefix: /canary } }]
    route: [{ destination: { host: server, subset: v2 } }]
  - route:
    - { destination: { host: server, subset: v1 }, weight: 70 }
    - { destination: { host: server, subset: v2 }, weight: 30 }
`)}`,
  );
  t.deepEqual([...new Set(await apps(15, {}, '/canary'))], ['v2']);
  const split = await apps(100);
  const n1 = split.filter((a) => a === 'v1').length;
  t.log(`70/30 split over 100: v1=${n1}`);
  t.true(n1 >= 58 && n1 <= 82, `v1 got ${n1} of 100, expected 70 ± 12`);
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/canary`);
  t.like(ex.traffic, { destinationRule: { name: 'default/server', subset: 'v2', labels: { 'service.istio.io/canonical-name': 'server-v2-app' } }, cluster: 'server.default.svc.cluster.local|80|v2' });
});

test.serial('an unknown subset is 503 NC (no such cluster)', async (t) => {
  await applyL7(
    m,
    `${SUBSETS}---
${virtualService(`  - route: [{ destination: { host: server, subset: v3 } }]
`)}`,
  );
  const from = m.requestLogs().length;
  t.is((await get(h.fwd, '/nc')).status, 503);
  t.is(logsSince(m, from).at(-1)!['response_flags'], 'NC');
});

test.serial('ROUND_ROBIN alternates between the endpoints', async (t) => {
  await applyL7(m, DR_LB('{ simple: ROUND_ROBIN }'));
  const seq = await apps(10);
  t.deepEqual(seq, seq[0] === 'v1' ? ['v1', 'v2', 'v1', 'v2', 'v1', 'v2', 'v1', 'v2', 'v1', 'v2'] : ['v2', 'v1', 'v2', 'v1', 'v2', 'v1', 'v2', 'v1', 'v2', 'v1']);
});

test.serial('RANDOM spreads over both endpoints', async (t) => {
  await applyL7(m, DR_LB('{ simple: RANDOM }'));
  const seq = await apps(60);
  const n1 = seq.filter((a) => a === 'v1').length;
  t.log(`RANDOM: v1=${n1}/60`);
  t.true(n1 >= 18 && n1 <= 42, `v1 got ${n1} of 60`);
});

test.serial('LEAST_REQUEST sends each request to the endpoint with fewer in flight', async (t) => {
  await applyL7(m, DR_LB('{ simple: LEAST_REQUEST }'));
  h.v1.fallback = { status: 200, delayMs: 400 };
  h.v2.fallback = { status: 200, delayMs: 400 };
  const rs = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      // Staggered so each pick sees the requests already in flight.
      await new Promise((r) => setTimeout(r, i * 20));
      return get(h.fwd, `/lr${i}`, {}, { agent: new http.Agent({ keepAlive: false }) });
    }),
  );
  t.true(rs.every((r) => r.status === 200));
  t.is(h.v1.requests, 5);
  t.is(h.v2.requests, 5);
  t.is(h.v1.maxActive, 5);
});

test.serial('consistent hash on a header, a cookie and the source IP: the same key always reaches the same endpoint', async (t) => {
  await applyL7(m, DR_LB('{ consistentHash: { httpHeaderName: x-user } }'));
  const seen = new Set<string>();
  for (let u = 0; u < 12; u++) {
    const got = new Set(await apps(5, { 'x-user': `user-${u}` }, `/h${u}-`));
    t.is(got.size, 1, `user-${u} reached ${[...got].join(', ')}`);
    seen.add([...got][0] as string);
  }
  t.is(seen.size, 2, 'different users spread over both endpoints');
  await applyL7(m, DR_LB('{ consistentHash: { httpCookie: { name: session } } }'));
  const byCookie = new Set<string>();
  for (let u = 0; u < 12; u++) {
    const got = new Set(await apps(4, { cookie: `a=b; session=s${u}` }, `/c${u}-`));
    t.is(got.size, 1);
    byCookie.add([...got][0] as string);
  }
  t.is(byCookie.size, 2);
  await applyL7(m, DR_LB('{ consistentHash: { useSourceIp: true } }'));
  t.is(new Set(await apps(10, {}, '/ip')).size, 1, 'one client IP (each request from another port), one endpoint');
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/ip`);
  t.deepEqual(ex.traffic.loadBalancer, { kind: 'hash', by: { sourceIp: true } });
});

const LIMIT = (target: string, bucket: string): string => `apiVersion: traffic.ztunnel-ts.io/v1alpha1
kind: LocalRateLimit
metadata: { name: rl, namespace: default }
spec:
  targetRefs: [${target}]
  tokenBucket: ${bucket}
`;

test.serial('a LocalRateLimit on the Service: a burst gets maxTokens through, the rest 429 RL with x-ratelimit-* headers', async (t) => {
  await applyL7(m, LIMIT('{ kind: Service, name: server }', '{ maxTokens: 5, tokensPerFill: 5, fillInterval: 10s }'));
  const from = m.requestLogs().length;
  const rs: { status: number; headers: http.IncomingHttpHeaders; text: string }[] = [];
  for (let i = 0; i < 12; i++) rs.push(await get(h.fwd, `/rl${i}`));
  t.deepEqual(
    rs.map((r) => r.status),
    [...Array(5).fill(200), ...Array(7).fill(429)],
  );
  // Admitted answers carry the limit as well, counting down.
  t.deepEqual(
    rs.slice(0, 5).map((r) => [r.headers['x-ratelimit-limit'], r.headers['x-ratelimit-remaining']]),
    [4, 3, 2, 1, 0].map((n) => ['5, 5;w=10', String(n)]),
  );
  const limited = rs[5]!;
  t.is(limited.text, 'local_rate_limited');
  t.is(limited.headers['x-ratelimit-limit'], '5, 5;w=10');
  t.is(limited.headers['x-ratelimit-remaining'], '0');
  t.true(Number(limited.headers['x-ratelimit-reset']) > 0 && Number(limited.headers['x-ratelimit-reset']) <= 10);
  t.is(logsSince(m, from).filter((l) => l['response_flags'] === 'RL').length, 7);
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_rate_limited_total', { limit: 'default/rl#0' }), 7);
  t.is(sumSamples(metrics, 'istio_requests_total', { response_flags: 'RL', response_code: '429' }), 7);
});

test.serial('the token bucket admits the configured rate over time within tolerance', async (t) => {
  // A new bucket shape replaces the old bucket: 4 tokens, 4 more every 500ms = 8 requests/s.
  await applyL7(m, LIMIT('{ kind: Service, name: server }', '{ maxTokens: 4, tokensPerFill: 4, fillInterval: 500ms }'));
  let ok = 0;
  let total = 0;
  const start = Date.now();
  while (Date.now() - start < 2500) {
    total++;
    if ((await get(h.fwd, `/rate${total}`)).status === 200) ok++;
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsed = (Date.now() - start) / 1000;
  // The bucket starts full and gains 4 tokens at the end of each whole 500ms interval.
  const expected = 4 + 4 * Math.floor(elapsed / 0.5);
  t.log(`${ok} of ${total} admitted in ${elapsed.toFixed(2)}s (expected ≈ ${expected})`);
  t.true(total > ok, 'requests were sent faster than the limit');
  t.true(Math.abs(ok - expected) <= 4, `admitted ${ok}, expected ${expected} ± 4`);
});

test.serial('a LocalRateLimit on one named VirtualService http route limits only that route', async (t) => {
  await applyL7(
    m,
    `${LIMIT('{ group: networking.istio.io, kind: VirtualService, name: server, sectionName: api }', '{ maxTokens: 2, fillInterval: 10s }')}---
${virtualService(`  - name: api
    match: [{ uri: { prefix: /api } }]
    route: [{ destination: { host: server } }]
  - name: rest
    route: [{ destination: { host: server } }]
`)}`,
  );
  const api: number[] = [];
  for (let i = 0; i < 4; i++) api.push((await get(h.fwd, `/api/${i}`)).status);
  t.deepEqual(api, [200, 200, 429, 429]);
  for (let i = 0; i < 6; i++) t.is((await get(h.fwd, `/other${i}`)).status, 200);
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/api/x`);
  t.deepEqual(ex.traffic.rateLimits, [{ limit: 'default/rl', target: 'VirtualService default/server#api', maxTokens: 2, tokensPerFill: 2, fillIntervalMs: 10000 }]);
});
