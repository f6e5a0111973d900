import test from 'ava';
import * as http from 'node:http';
import * as net from 'node:net';
import { WaypointMesh, get } from './harness';
import { trafficMesh, adminJson, applyL7, logsSince, vsTo } from './traffic-backend';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';
import { blackhole } from '../../helpers/blackhole';

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/**
 * Retries and timeouts end to end (client → node-a → waypoint → node-b → app), configured
 * with VirtualService / DestinationRule / HTTPRoute objects, against apps that fail on
 * command: 503s, connection resets, slow answers, and a closed port.
 */
const m = new WaypointMesh();

// "virtual": a Service with no endpoints of its own, reachable only through a VirtualService.
const h = trafficMesh(test, m, { services: [{ name: 'virtual', hostname: 'virtual.default.svc.cluster.local', vip: m.ip(105), ports: { 80: 8080 }, waypoint: m.WP }] });

test.serial('a flaky backend is recovered by retries; attempts exhausted → the last answer with URX', async (t) => {
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 3, retryOn: 5xx }\n'));
  h.v1.script = [{ status: 503 }, { status: 500 }];
  const r = await get(h.fwd, '/flaky');
  t.is(r.status, 200);
  t.is(h.v1.requests, 3, 'two failed tries, then the one that answered');
  const from = m.requestLogs().length;
  h.v1.fallback = { status: 503 };
  const r2 = await get(h.fwd, '/down');
  t.is(r2.status, 503);
  t.is(h.v1.requests, 3 + 4, 'first try + 3 retries');
  const log = logsSince(m, from).at(-1)!;
  t.is(log['response_flags'], 'URX');
  t.is(log['response_code'], 503);
  const metrics = await m.wpMetrics();
  t.true(sumSamples(metrics, 'istio_requests_total', { response_flags: 'URX', response_code: '503' }) >= 1);
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_retries_total', { result: 'retried' }), 2 + 3);
});

test.serial('reset and gRPC/status conditions: only the listed retryOn conditions are retried', async (t) => {
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 2, retryOn: reset }\n'));
  h.v1.script = ['reset'];
  t.is((await get(h.fwd, '/reset')).status, 200);
  t.is(h.v1.requests, 2);
  h.v1.reset();
  // A 503 is not a reset: relayed as is, no retry.
  h.v1.script = [{ status: 503 }];
  t.is((await get(h.fwd, '/503')).status, 503);
  t.is(h.v1.requests, 1);
  h.v1.reset();
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 2, retryOn: "retriable-status-codes,409,418" }\n'));
  h.v1.script = [{ status: 418 }, { status: 409 }];
  t.is((await get(h.fwd, '/codes')).status, 200);
  t.is(h.v1.requests, 3);
  h.v1.reset();
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 2, retryOn: gateway-error }\n'));
  h.v1.script = [{ status: 500 }];
  t.is((await get(h.fwd, '/500')).status, 500, '500 is not a gateway error');
  h.v1.script = [{ status: 504 }, { status: 502 }];
  t.is((await get(h.fwd, '/gw')).status, 200);
});

test.serial("a VirtualService route without retries gets Istio's default (2 retries on 503, connect-failure…)", async (t) => {
  await applyL7(m, vsTo('server-v1', ''));
  h.v1.script = [{ status: 503 }, { status: 503 }];
  t.is((await get(h.fwd, '/default')).status, 200);
  t.is(h.v1.requests, 3);
  h.v1.reset();
  h.v1.script = [{ status: 500 }];
  t.is((await get(h.fwd, '/default500')).status, 500, '500 is not in the default policy');
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 0 }\n'));
  h.v1.reset();
  h.v1.script = [{ status: 503 }];
  t.is((await get(h.fwd, '/off')).status, 503, 'attempts: 0 turns retries off');
  t.is(h.v1.requests, 1);
});

test.serial('the retry budget (maxRetries) stops a failing backend from being multiplied: overflow → UO', async (t) => {
  await applyL7(
    m,
    `${vsTo('server-v1', '    retries: { attempts: 5, retryOn: 5xx }\n')}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: server-v1
  trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } }
`,
  );
  h.v1.fallback = { status: 503, delayMs: 300 };
  const from = m.requestLogs().length;
  const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => get(h.fwd, `/budget${i}`)));
  t.true(rs.every((r) => r.status === 503));
  // One request holds the only retry slot and uses its 5 retries; the other five are not retried.
  t.is(h.v1.requests, 6 + 5, `backend saw ${h.v1.requests} requests`);
  const flags = logsSince(m, from).map((l) => l['response_flags']);
  t.is(flags.filter((f) => f === 'UO').length, 5, flags.join(' '));
  t.is(flags.filter((f) => f === 'URX').length, 1, flags.join(' '));
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_circuit_breaker_overflows_total', { limit: 'retry_budget' }), 5);
});

test.serial('per-try timeout: a slow try is abandoned and retried; all tries slow → 504 UT', async (t) => {
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 2, perTryTimeout: 200ms, retryOn: 5xx }\n'));
  h.v1.script = [{ status: 200, delayMs: 1500 }];
  let t0 = Date.now();
  t.is((await get(h.fwd, '/pertry')).status, 200);
  const took = Date.now() - t0;
  t.true(took >= 200 && took < 1400, `took ${took}ms`);
  t.is(h.v1.requests, 2);
  h.v1.reset();
  h.v1.fallback = { status: 200, delayMs: 1500 };
  const from = m.requestLogs().length;
  t0 = Date.now();
  const r = await get(h.fwd, '/allslow');
  const took2 = Date.now() - t0;
  t.is(r.status, 504);
  t.is(r.text, 'upstream request timeout');
  t.true(took2 >= 600 && took2 < 1400, `three 200ms tries took ${took2}ms`);
  t.is(h.v1.requests, 3);
  t.true(String(logsSince(m, from).at(-1)!['response_flags']).split(',').includes('UT'));
});

test.serial('overall timeout bounds the request including retries: 504 UT', async (t) => {
  await applyL7(m, vsTo('server-v1', '    timeout: 300ms\n    retries: { attempts: 5, perTryTimeout: 200ms, retryOn: 5xx }\n'));
  h.v1.fallback = { status: 200, delayMs: 1500 };
  const from = m.requestLogs().length;
  const t0 = Date.now();
  const r = await get(h.fwd, '/overall');
  const took = Date.now() - t0;
  t.is(r.status, 504);
  t.true(took >= 300 && took < 1000, `took ${took}ms`);
  t.true(h.v1.requests <= 2, `the 300ms budget allows at most two 200ms tries (saw ${h.v1.requests})`);
  t.is(logsSince(m, from).at(-1)!['response_flags'], 'UT');
});

test.serial('a request body within the buffer is replayed in full; one past the buffer limit is never replayed', async (t) => {
  await applyL7(m, vsTo('server-v1', '    retries: { attempts: 2, retryOn: 5xx }\n'));
  h.v1.script = [{ status: 503 }];
  const small = 'x'.repeat(10_000);
  t.is((await get(h.fwd, '/small', { 'content-type': 'text/plain' }, { method: 'POST', body: small })).status, 200);
  t.deepEqual(h.v1.bodies, [10_000, 10_000]);
  h.v1.reset();
  h.v1.script = [{ status: 503 }];
  const big = 'y'.repeat(200_000);
  const r = await get(h.fwd, '/big', { 'content-type': 'text/plain' }, { method: 'POST', body: big });
  t.is(r.status, 503, 'the first answer is relayed: the body cannot be sent again');
  t.deepEqual(h.v1.bodies, [200_000]);
});

test.serial('connect failure (closed port) is retried on another endpoint; without retries it is 503 UF', async (t) => {
  await h.v2.stop();
  t.teardown(async () => {
    await h.v2.start();
  });
  await applyL7(m, vsTo('server', '    retries: { attempts: 2, retryOn: connect-failure }\n'));
  const agent = new http.Agent({ keepAlive: false });
  // One at a time: ten concurrent failures would also meet the retry budget (20% of active requests, at least 3).
  const ok = [];
  for (let i = 0; i < 10; i++) ok.push(await get(h.fwd, `/cf${i}`, {}, { agent }));
  t.deepEqual(
    ok.map((r) => r.status),
    Array(10).fill(200),
  );
  t.is(h.v1.requests, 10);
  await applyL7(m, vsTo('server', '    retries: { attempts: 0 }\n'));
  const from = m.requestLogs().length;
  const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => get(h.fwd, `/nocf${i}`, {}, { agent })));
  const failed = rs.filter((r) => r.status === 503);
  t.true(failed.length > 0, 'some requests went to the closed endpoint');
  t.true(logsSince(m, from).filter((l) => l['response_flags'] === 'UF').length === failed.length);
});

test.serial('DestinationRule tcp.connectTimeout: an endpoint that never completes the connection gets 503 UF, retried elsewhere with connect-failure', async (t) => {
  await h.v2.stop();
  // Registered before the black hole: teardowns run last-in first-out, so the black hole is
  // gone (its process killed) before server-v2 takes its port back.
  t.teardown(async () => {
    for (let i = 0; i < 60 && !(await canBind(m.V2, 8080)); i++) await new Promise((r) => setTimeout(r, 50));
    await h.v2.start();
  });
  // The port of server-v2 drops SYNs (a full accept queue): node-b's dial hangs, so the
  // tunnel to the endpoint never opens and only the connect timeout ends the try.
  await blackhole(t, m.V2, 8080);
  const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ct, namespace: default }
spec:
  host: server
  trafficPolicy: { connectionPool: { tcp: { connectTimeout: 300ms } } }
`;
  await applyL7(m, `${vsTo('server-v2', '    retries: { attempts: 0 }\n')}---\n${dr.replace('host: server', 'host: server-v2')}`);
  const from = m.requestLogs().length;
  const r = await get(h.fwd, '/ct');
  t.is(r.status, 503);
  await waitUntil(() => logsSince(m, from).length > 0, 5000, () => 'request log');
  t.like(logsSince(m, from)[0], { response_flags: 'UF', response_code_details: 'upstream_reset_before_response_started{connection_failure}', upstream_host: `${m.V2}:8080` });
  // With a retry on connect-failure the request reaches server-v1 instead.
  await applyL7(m, `${vsTo('server', '    retries: { attempts: 3, retryOn: connect-failure }\n')}---\n${dr}`);
  const ok = [];
  for (let i = 0; i < 6; i++) ok.push((await get(h.fwd, `/ct-retry${i}`, {}, { agent: new http.Agent({ keepAlive: false }) })).status);
  t.deepEqual(ok, Array(6).fill(200));
});

test.serial('Gateway API HTTPRoute retry (codes, attempts) and timeouts.backendRequest as the per-try timeout', async (t) => {
  await applyL7(
    m,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules:
  - backendRefs: [{ name: server-v1, port: 80 }]
    retry: { attempts: 2, codes: [503], backoff: 10ms }
    timeouts: { request: 2s, backendRequest: 200ms }
`,
  );
  h.v1.script = [{ status: 503 }, { status: 200, delayMs: 1500 }];
  t.is((await get(h.fwd, '/gw-retry')).status, 200);
  t.is(h.v1.requests, 3, '503, then a slow try cut at 200ms, then a good one');
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/gw-retry`);
  t.like(ex.traffic, { applies: true, timeoutMs: 2000, retry: { attempts: 2, perTryTimeoutMs: 200, backoffBaseMs: 10 } });
  t.true(ex.traffic.retry.retryOn.includes('503'));
});

test.serial('/debug/explain names the VirtualService route, retry policy and timeout', async (t) => {
  await applyL7(m, vsTo('server-v1', '    name: main\n    timeout: 3s\n    retries: { attempts: 4, perTryTimeout: 1s, retryOn: "5xx,reset" }\n'));
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/x`);
  t.like(ex.traffic, {
    applies: true,
    virtualService: { name: 'default/vs', http: 0, routeName: 'main' },
    cluster: 'server-v1.default.svc.cluster.local|80|',
    retry: { attempts: 4, perTryTimeoutMs: 1000, retryOn: ['5xx', 'reset'] },
    timeoutMs: 3000,
  });
});

test.serial('a VirtualService routes a Service that has no endpoints of its own to another Service', async (t) => {
  const virt = await m.forwarder({ host: m.ip(105), port: 80 });
  await applyL7(m, vsTo('server-v1', '', 'virtual'));
  const r = await get(virt, '/virtual', { host: 'virtual.default.svc.cluster.local' });
  t.is(r.status, 200);
  t.is(h.v1.requests, 1);
});
