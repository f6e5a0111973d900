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
  m.track(await startHttpApp(m.ip(22), 8080, 'pinned'));
  // WAYPOINT_FOR=all: Services and workloads that name this waypoint; `pinned` names it as its own waypoint.
  await m.start('', { WAYPOINT_FOR: 'all' }, { workloads: [{ name: 'pinned', ips: [m.ip(22)], node: 'node-b', authorizationPolicies: ['default/only-waypoint'], waypoint: m.WP }] });
});

test.after.always(() => m.close());

test.serial('HTTP/1.1 through node proxy → waypoint → node proxy → app, keep-alive reused; the app sees the waypoint identity only', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const r = await get(fwd, `/hello?i=${i}`, { 'x-request-id': `rid-${i}` }, { agent });
    t.is(r.status, 200, r.text);
    seen.add(r.body.app);
    t.is(r.body.url, `/hello?i=${i}`);
    t.is(r.body.headers['x-request-id'], `rid-${i}`);
    t.regex(r.body.headers['traceparent'], /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // node-b saw the waypoint's IP: the app's peer is the waypoint (orig-src on loopback).
    t.is(r.body.peer, m.WP);
  }
  t.true(seen.size >= 1);
  // One downstream connection, one waypoint tunnel for HTTP: the client kept its connection.
  const post = await get(fwd, '/p', { 'content-type': 'text/plain' }, { method: 'POST', body: 'x'.repeat(5000), agent });
  t.is(post.body.body.length, 5000);
  t.is(post.body.headers['transfer-encoding'] ?? post.body.headers['content-length'], post.body.headers['transfer-encoding'] ? 'chunked' : '5000');

  // Direct to the pod (no waypoint): node-b's policy allows only the waypoint principal.
  const err = await socksConnect(m.a.listener('socks5'), { host: m.V1, port: 8080 }, m.CLIENT).then(
    async (s) => {
      // HBONE answers after the policy check; a denied CONNECT closes the stream.
      const closed = new Promise<string>((r) => {
        let got = '';
        s.on('data', (c) => (got += c.toString()));
        s.on('close', () => r(got));
      });
      s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      return closed;
    },
    (e: unknown) => e,
  );
  t.true(err instanceof SocksReplyError || err === '', `direct request must be denied, got ${String(err)}`);
  await waitUntil(() => m.b.access('connection complete').some((l) => l['reason'] === 'DENY'), 5000, () => 'node-b DENY line');

  await waitUntil(() => m.requestLogs().length >= 7, 5000, () => `request logs: ${m.requestLogs().length}`);
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_requests_total', { reporter: 'waypoint', response_code: '200', request_protocol: 'http', source_principal: 'spiffe://cluster.local/ns/default/sa/client', destination_principal: 'spiffe://cluster.local/ns/default/sa/server', connection_security_policy: 'mutual_tls' }), 7);
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
