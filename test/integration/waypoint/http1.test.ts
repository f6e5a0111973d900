import test from 'ava';
import * as http from 'node:http';
import { WaypointMesh, get, startHttpApp } from './harness';
import { SocksReplyError, socksConnect } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';

const m = new WaypointMesh();

test.before(async () => {
  m.track(await startHttpApp(m.V1, 8080, 'v1'));
  m.track(await startHttpApp(m.V2, 8080, 'v2'));
  const pinned = await startHttpApp(m.ip(22), 8080, 'pinned');
  // Answers `Keep-Alive: timeout=1`, which node:http's Agent on its own would never pool.
  pinned.keepAliveTimeout = 1000;
  m.track(pinned);
  // WAYPOINT_FOR=all: Services and workloads that name this waypoint; `pinned` names it as its own waypoint.
  await m.start('', { WAYPOINT_FOR: 'all' }, { workloads: [{ name: 'pinned', ips: [m.ip(22)], node: 'node-b', authorizationPolicies: ['default/only-waypoint'], waypoint: m.WP }] });
});

test.after.always(() => m.close());

test.serial('HTTP/1.1 through node proxy → waypoint → node proxy → app, keep-alive reused; the app sees the waypoint identity only', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const r = await get(fwd, `/hello?i=${i}`, { 'x-request-id': `rid-${i}` }, { agent });
    t.is(r.status, 200, r.text);
    seen.add(r.body.app);
    t.is(r.body.url, `/hello?i=${i}`);
    t.is(r.body.headers['x-request-id'], `rid-${i}`);
    t.regex(r.body.headers['traceparent'], /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // node-b saw the waypoint's IP: the app's peer is the waypoint (orig-src on loopback).
    t.is(r.body.peer, m.WP);
  }
  t.deepEqual([...seen].sort(), ['v1', 'v2'], 'no route attached: the Service itself, load-balanced over both endpoints');
  // Upstream HTTP connections are reused: node-b saw one connection from the waypoint per endpoint.
  const nodeB = await m.b.metrics();
  t.is(sumSamples(nodeB, 'istio_tcp_connections_opened_total', { source_principal: 'spiffe://cluster.local/ns/default/sa/waypoint' }), 2);
  const post = await get(fwd, '/p', { 'content-type': 'text/plain' }, { method: 'POST', body: 'x'.repeat(5000), agent });
  t.is(post.body.body, 'x'.repeat(5000));
  t.is(post.body.headers['content-length'], '5000');

  // Direct to the pod (no waypoint): node-b's policy allows only the waypoint principal, so
  // the CONNECT is refused and node-a answers SOCKS reply 0x02 (not allowed by ruleset).
  const err = await socksConnect(m.a.listener('socks5'), { host: m.V1, port: 8080 }, m.CLIENT).then(
    (s) => {
      s.destroy();
      return null;
    },
    (e: unknown) => e,
  );
  t.true(err instanceof SocksReplyError, `direct request must be refused, got ${String(err)}`);
  t.is((err as SocksReplyError).code, 2);
  await waitUntil(() => m.b.access('connection complete').some((l) => l['reason'] === 'DENY'), 5000, () => 'node-b DENY line');

  await waitUntil(() => m.requestLogs().length >= 13, 5000, () => `request logs: ${m.requestLogs().length}`);
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_requests_total', { reporter: 'waypoint', response_code: '200', request_protocol: 'http', source_principal: 'spiffe://cluster.local/ns/default/sa/client', destination_principal: 'spiffe://cluster.local/ns/default/sa/server', connection_security_policy: 'mutual_tls' }), 13);
  const line = m.requestLogs()[0]!;
  t.like(line, { method: 'GET', path: '/hello?i=0', response_code: 200, response_flags: '-', x_request_id: 'rid-0', 'src.identity': 'spiffe://cluster.local/ns/default/sa/client', 'dst.identity': 'spiffe://cluster.local/ns/default/sa/server', 'src.workload': 'client', 'dst.service': 'server.default.svc.cluster.local' });
});

test.serial('WAYPOINT_FOR=all: traffic to a pod IP whose workload names this waypoint goes through it to that pod', async (t) => {
  const fwd = await m.forwarder({ host: m.ip(22), port: 8080 });
  const r = await get(fwd, '/pinned');
  t.is(r.status, 200, r.text);
  t.is(r.body.app, 'pinned');
  t.is(r.body.peer, m.WP, 'the pod is reached from the waypoint, whose identity its policy allows');
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/pinned'), 5000, () => 'log');
  t.like(m.requestLogs().find((l) => l['path'] === '/pinned'), { 'dst.workload': 'pinned', upstream_host: `${m.ip(22)}:8080`, response_code: 200 });
});

test.serial('an endpoint announcing Keep-Alive timeout=1 still gets one pooled upstream connection, dropped by the waypoint before the endpoint would', async (t) => {
  const fwd = await m.forwarder({ host: m.ip(22), port: 8080 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const opened = async (): Promise<number> => sumSamples(await m.b.metrics(), 'istio_tcp_connections_opened_total', { source_principal: 'spiffe://cluster.local/ns/default/sa/waypoint', destination_principal: 'spiffe://cluster.local/ns/default/sa/pinned' });
  // Past any idle budget, so a connection pooled by an earlier test is gone.
  await new Promise((r) => setTimeout(r, 1300));
  const before = await opened();
  for (let i = 0; i < 30; i++) {
    const r = await get(fwd, `/ka?i=${i}`, {}, { agent });
    t.is(r.status, 200, r.text);
  }
  t.is((await opened()) - before, 1, '30 requests, one upstream HBONE stream (not one per request)');
  // Idle past the endpoint's timeout: the waypoint dropped the socket first (at 750ms), so the next requests open one new connection and none fails.
  await new Promise((r) => setTimeout(r, 1300));
  for (let i = 0; i < 5; i++) t.is((await get(fwd, `/after-idle?i=${i}`, {}, { agent })).status, 200);
  t.is((await opened()) - before, 2);
  t.false(m.requestLogs().some((l) => String(l['path']).startsWith('/after-idle') && l['response_code'] !== 200));
});
