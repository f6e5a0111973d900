import { httpRequest } from '../../helpers/http';
import test from 'ava';
import { connect } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { TestMesh, waitUntil, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, waitClosed, type EchoServer } from '../../helpers/echo-server';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { TRAFFIC_LABELS } from '../../../src/telemetry/tcp-metrics';
import { SpiffeId } from '../../../src/identity/spiffe';

/**
 * Two node proxies in this process: node-a serves `client` (and `stranger`-less sources are
 * refused), node-b serves `server` whose app is an echo server on its workload IP. A third
 * echo server outside the mesh is the passthrough target.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const NODE_B = ip(2);
const CLIENT = ip(10);
const SERVER = ip(20);
const VIP = ip(100);
const OUTSIDE = ip(40);
const STRANGER = ip(50);
const TCP_WL = ip(30);

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;
let outside: EchoServer;
let tcpApp: EchoServer;

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig({
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'server', ips: [SERVER], node: 'node-b', services: { 'default/echo.default.svc.cluster.local': { 80: 8080 } } },
      { name: 'legacy', ips: [TCP_WL], node: 'node-c', protocol: 'TCP' },
    ],
    services: [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: VIP, ports: { 80: 8080 } }],
  });
  await mesh.startCa();
  tcpApp = await startEchoServer(TCP_WL, 7000);
  app = await startEchoServer(SERVER, 8080);
  outside = await startEchoServer(OUTSIDE, 9000);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, OUTBOUND_ADDR: `${VIP}:80`, WORKLOAD_WAIT_TIMEOUT: '200ms' });
  b = await mesh.startNode('node-b', { SOCKS5_ADDR: `${NODE_B}:0` });
});

test.after.always(async () => {
  await mesh?.close();
  await app?.close();
  await outside?.close();
  await tcpApp?.close();
});

/** Counters of one node, reduced to the numbers the tests compare. */
async function totals(n: TestNode, match: Record<string, string> = {}) {
  const m = await n.metrics();
  return {
    opened: sumSamples(m, 'istio_tcp_connections_opened_total', match),
    closed: sumSamples(m, 'istio_tcp_connections_closed_total', match),
    received: sumSamples(m, 'istio_tcp_received_bytes_total', match),
    sent: sumSamples(m, 'istio_tcp_sent_bytes_total', match),
  };
}

test.serial('SOCKS5 round trip through two node proxies: bytes, metrics and access logs exact on both sides', async (t) => {
  const payload = randomBytes(256 * 1024);
  const t0 = process.hrtime.bigint();
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  const echoed = await exchange(s, payload);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.log(`256 KiB echo through SOCKS5 → node-a → HBONE → node-b → app: ${ms.toFixed(1)}ms`);
  t.true(echoed.equals(payload));
  await waitUntil(() => a.access('connection complete').length >= 1 && b.access('connection complete').length >= 1, 5000, () => 'access logs');

  const src = await totals(a, { reporter: 'source' });
  t.deepEqual(src, { opened: 1, closed: 1, received: payload.length, sent: payload.length });
  const dst = await totals(b, { reporter: 'destination' });
  t.deepEqual(dst, { opened: 1, closed: 1, received: payload.length, sent: payload.length });

  const ma = await a.metrics();
  // One HBONE connection dialled and pooled for this first exchange, read at scrape time.
  t.is(sumSamples(ma, 'ztunnel_ts_hbone_pool_dials_total'), 1);
  t.is(sumSamples(ma, 'ztunnel_ts_hbone_pool_sessions'), 1);
  t.is(sumSamples(ma, 'ztunnel_ts_hbone_pool_dial_failures_total'), 0);
  const opened = ma.samples.find((x) => x.name === 'istio_tcp_connections_opened_total')!;
  t.deepEqual(Object.keys(opened.labels), [...TRAFFIC_LABELS]);
  t.like(opened.labels, {
    reporter: 'source',
    source_workload: 'client-deploy',
    source_canonical_service: 'client-app',
    source_canonical_revision: 'v1',
    source_workload_namespace: 'default',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    source_app: 'client-app',
    source_version: 'v1',
    source_cluster: 'cluster1',
    destination_service: 'unknown',
    destination_workload: 'server-deploy',
    destination_workload_namespace: 'default',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/server',
    destination_cluster: 'cluster1',
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  });
  const mb = await b.metrics();
  const inb = mb.samples.find((x) => x.name === 'istio_tcp_connections_closed_total')!;
  t.like(inb.labels, {
    reporter: 'destination',
    source_workload: 'client-deploy',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    destination_workload: 'server-deploy',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/server',
    destination_service: 'echo.default.svc.cluster.local',
    connection_security_policy: 'mutual_tls',
    response_flags: '-',
  });

  const out = a.access('connection complete')[0]!;
  t.like(out, {
    level: 'info',
    'src.workload': 'client',
    'src.namespace': 'default',
    'src.identity': 'spiffe://cluster.local/ns/default/sa/client',
    'dst.addr': `${SERVER}:15008`,
    'dst.hbone_addr': `${SERVER}:8080`,
    'dst.workload': 'server',
    'dst.namespace': 'default',
    'dst.identity': 'spiffe://cluster.local/ns/default/sa/server',
    direction: 'outbound',
    bytes_sent: payload.length,
    bytes_recv: payload.length,
  });
  t.regex(String(out['src.addr']), new RegExp(`^${CLIENT.replace(/\./g, '\\.')}:\\d+$`));
  const inLine = b.access('connection complete')[0]!;
  t.like(inLine, {
    level: 'info',
    'dst.addr': `${SERVER}:15008`,
    'dst.hbone_addr': `${SERVER}:8080`,
    'dst.service': 'echo.default.svc.cluster.local',
    'src.identity': 'spiffe://cluster.local/ns/default/sa/client',
    'dst.identity': 'spiffe://cluster.local/ns/default/sa/server',
    direction: 'inbound',
    bytes_sent: payload.length,
    bytes_recv: payload.length,
  });
  t.is(a.recordedTwice(), 0);
  t.is(b.recordedTwice(), 0);
  // The app saw the connection from the inbound proxy's dial (one connection).
  t.is(app.peers.length, 1);
});

test.serial('a non-TLS client on 15008 is an early failure: counted by reason, logged once, no istio_tcp series', async (t) => {
  const before = await totals(b);
  const failuresBefore = sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'TLS_FAILURE' });
  const hbone = b.listener('inbound', SERVER);
  await new Promise<void>((resolve) => {
    const s = connect({ host: hbone.ip, port: hbone.port });
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    s.on('data', () => undefined);
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  let failures = failuresBefore;
  for (let i = 0; i < 100 && failures === failuresBefore; i++) {
    await new Promise((r) => setTimeout(r, 50));
    failures = sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'TLS_FAILURE' });
  }
  t.is(failures, failuresBefore + 1);
  t.deepEqual(await totals(b), before);
  t.true(b.logs.find((l) => l['msg'] === 'connection failed' && l['reason'] === 'TLS_FAILURE').length >= 1);
});

test.serial('outbound listener with an explicit destination (fixed OUTBOUND_ADDR = service VIP:80): routed to the endpoint', async (t) => {
  const before = await totals(b, { reporter: 'destination' });
  const s = connect({ host: VIP, port: 80, localAddress: CLIENT, allowHalfOpen: true });
  await once(s, 'connect');
  const src = `${CLIENT}:${s.localPort}`;
  const echoed = await exchange(s, Buffer.from('hello via the service VIP'));
  t.is(echoed.toString(), 'hello via the service VIP');
  await waitUntil(() => b.access('connection complete').length >= 2, 5000, () => 'inbound log');
  const after = await totals(b, { reporter: 'destination' });
  t.is(after.opened - before.opened, 1);
  t.is(after.received - before.received, 25);
  // This connection's line, by its client address (threads write their lines in their own order).
  await waitUntil(() => a.access('connection complete').some((l) => l['src.addr'] === src), 5000, () => `outbound line of ${src}`);
  const line = a.access('connection complete').find((l) => l['src.addr'] === src)!;
  t.is(line['dst.service'], 'echo.default.svc.cluster.local');
  t.is(line['dst.hbone_addr'], `${SERVER}:8080`);
});

test.serial('SOCKS5 domain names resolve from the mesh state (service hostname), not DNS', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: 'echo.default.svc.cluster.local', port: 80 }, CLIENT);
  t.is((await exchange(s, Buffer.from('by name'))).toString(), 'by name');
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: 'nope.example.com', port: 80 }, CLIENT));
  t.is((err as SocksReplyError).code, 0x04);
  await waitUntil(() => a.logs.find((l) => l['reason'] === 'SOCKS_UNKNOWN_HOST').length === 1, 3000, () => 'unknown host log');
});

test.serial('SOCKS5 short names are completed with CLUSTER_DOMAIN (name.ns, name.ns.svc), as a pod DNS search list would', async (t) => {
  for (const host of ['echo.default', 'echo.default.svc']) {
    const s = await socksConnect(a.listener('socks5'), { host, port: 80 }, CLIENT);
    t.is((await exchange(s, Buffer.from(host))).toString(), host);
  }
  await waitUntil(() => a.access('connection complete').filter((l) => l['dst.service'] === 'echo.default.svc.cluster.local').length >= 3, 5000, () => 'access logs');
});

test.serial('passthrough to a non-mesh address: plain TCP, connection_security_policy unknown', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: OUTSIDE, port: 9000 }, CLIENT);
  t.is((await exchange(s, Buffer.from('outside'))).toString(), 'outside');
  await waitUntil(() => a.access('connection complete').some((l) => l['dst.addr'] === `${OUTSIDE}:9000`), 5000, () => 'passthrough log');
  const m = await a.metrics();
  const closed = m.samples.find((x) => x.name === 'istio_tcp_connections_closed_total' && x.labels['connection_security_policy'] === 'unknown')!;
  t.like(closed.labels, { destination_workload: 'unknown', source_principal: 'unknown', destination_principal: 'unknown', response_flags: '-' });
  t.is(sumSamples(m, 'istio_tcp_received_bytes_total', { connection_security_policy: 'unknown' }), 7);
  const line = a.access('connection complete').find((l) => l['dst.addr'] === `${OUTSIDE}:9000`)!;
  t.false('src.identity' in line);
  t.is(line['bytes_sent'], 7);
  t.is(outside.peers[0]?.split(':')[0], CLIENT, 'the passthrough dial is bound to the client workload IP');
});

test.serial('a TCP (non-HBONE) mesh workload: plain TCP, destination labels set, no identities', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: TCP_WL, port: 7000 }, CLIENT);
  t.is((await exchange(s, Buffer.from('tcp workload'))).toString(), 'tcp workload');
  await waitUntil(() => a.access('connection complete').some((l) => l['dst.addr'] === `${TCP_WL}:7000`), 5000, () => 'tcp log');
  const line = a.access('connection complete').find((l) => l['dst.addr'] === `${TCP_WL}:7000`)!;
  t.like(line, { 'dst.workload': 'legacy', direction: 'outbound', bytes_sent: 12, bytes_recv: 12 });
  t.false('dst.identity' in line);
  t.false('dst.hbone_addr' in line);
  const m = await a.metrics();
  const closed = m.samples.find((x) => x.name === 'istio_tcp_connections_closed_total' && x.labels['destination_workload'] === 'legacy-deploy')!;
  t.like(closed.labels, { connection_security_policy: 'unknown', source_principal: 'unknown', destination_principal: 'unknown', source_workload: 'client-deploy' });
});

test.serial('unknown source is refused after the bounded wait, never attributed to the listener workload', async (t) => {
  const before = await totals(a);
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, STRANGER));
  t.is((err as SocksReplyError).code, 0x01);
  await waitUntil(() => a.logs.find((l) => l['reason'] === 'UNKNOWN_SOURCE').length === 1, 3000, () => 'unknown source log');
  const line = a.logs.find((l) => l['reason'] === 'UNKNOWN_SOURCE')[0]!;
  t.like(line, { level: 'warn', msg: 'connection failed', scope: 'access', direction: 'outbound', 'dst.addr': `${SERVER}:8080` });
  t.regex(String(line['error']), /source .* is not a workload on node "node-a" after waiting 200ms/);
  const m = await a.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reporter: 'source', reason: 'UNKNOWN_SOURCE' }), 1);
  t.deepEqual(await totals(a), before, 'early failures emit no istio_tcp series');

  // The fixed outbound listener (explicit destination) applies the same rule.
  const c = connect({ host: VIP, port: 80, localAddress: STRANGER });
  c.on('error', () => undefined);
  await waitClosed(c);
  await waitUntil(() => a.logs.find((l) => l['reason'] === 'UNKNOWN_SOURCE').length === 2, 3000, () => 'second unknown source');
  t.is(a.logs.find((l) => l['reason'] === 'UNKNOWN_SOURCE')[1]!['dst.addr'], `${VIP}:80`);
});

test.serial('self-call (destination is one of the proxy ports) is refused', async (t) => {
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: SERVER, port: 15008 }, CLIENT));
  t.true(err instanceof SocksReplyError);
  await waitUntil(() => a.logs.find((l) => l['reason'] === 'SELF_CALL').length === 1, 3000, () => 'self-call log');
  const m = await a.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reason: 'SELF_CALL' }), 1);
});

test.serial('zero-byte connections (connect then close) are counted once and logged without error spam', async (t) => {
  const before = await totals(b, { reporter: 'destination' });
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  const echoed = await exchange(s, Buffer.alloc(0));
  t.is(echoed.length, 0);
  await waitUntil(() => b.access('connection complete').length >= 4, 5000, () => 'zero-byte inbound log');
  const after = await totals(b, { reporter: 'destination' });
  t.is(after.closed - before.closed, 1);
  t.is(after.received - before.received, 0);
  t.is(b.logs.find((l) => l['level'] === 'error').length, 0);
});

test.serial('connect then immediate RST: recorded once with reason RESET at INFO, no error lines', async (t) => {
  const errorsBefore = a.logs.find((l) => l['level'] === 'error').length + b.logs.find((l) => l['level'] === 'error').length;
  const n = a.access('connection complete').length;
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  const src = `${CLIENT}:${s.localPort}`;
  s.resetAndDestroy();
  await waitUntil(() => a.access('connection complete').length === n + 1, 5000, () => 'reset recorded');
  const line = a.access('connection complete').find((l) => l['src.addr'] === src)!;
  t.is(line['level'], 'info');
  t.is(line['reason'], 'RESET');
  await waitUntil(async () => (await a.liveConnections()) === 0 && (await b.liveConnections()) === 0, 5000, () => 'both sides recorded');
  t.is(a.logs.find((l) => l['level'] === 'error').length + b.logs.find((l) => l['level'] === 'error').length, errorsBefore);
  t.is(a.recordedTwice() + b.recordedTwice(), 0);
});

test.serial('/debug/connections lists a live connection with bytes from the socket counters', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  s.write(Buffer.alloc(1000));
  await new Promise<void>((r) => {
    let n = 0;
    s.on('data', (c: Buffer) => ((n += c.length) >= 1000 ? r() : undefined));
  });
  const admin = a.addrs.admin!;
  const res = await fetch(`http://${admin.ip}:${admin.port}/debug/connections`);
  const body = (await res.json()) as { count: number; connections: Record<string, unknown>[] };
  t.is(body.count, 1);
  t.like(body.connections[0], { direction: 'outbound', dst: `${SERVER}:15008`, hbone: `${SERVER}:8080`, mtls: true, bytesClientToServer: 1000, bytesServerToClient: 1000, srcIdentity: 'spiffe://cluster.local/ns/default/sa/client' });
  const dump = (await (await fetch(`http://${admin.ip}:${admin.port}/config_dump`)).json()) as Record<string, unknown>;
  t.truthy(dump['certificates']);
  t.truthy(dump['pools']);
  t.is((dump['workloads'] as unknown[]).length, 3);
  t.truthy(dump['local_config']);
  t.truthy(dump['hbone_server']);
  t.truthy(dump['listeners']);
  t.false(JSON.stringify(dump).includes('PRIVATE KEY'));
  const index = (await (await fetch(`http://${admin.ip}:${admin.port}/debug/state-index`)).json()) as { workloads: string[]; workloadByAddr: Record<string, string[]> };
  t.is(index.workloads.length, 3);
  t.is(Object.values(index.workloadByAddr).filter((uids) => uids.length === 1).length, Object.keys(index.workloadByAddr).length, 'every indexed address names exactly one workload');
  t.true(Object.keys(index.workloadByAddr).some((k) => k.endsWith(SERVER)), 'the server workload is indexed by its address');
  s.destroy();
});

test.serial('connection rate: 200 sequential SOCKS5 connections through two proxies', async (t) => {
  const N = 200;
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
    await exchange(s, Buffer.from('x'));
  }
  const secs = (Date.now() - t0) / 1000;
  t.log(`${N} connections in ${secs.toFixed(2)}s = ${(N / secs).toFixed(0)} conn/s (open + 1-byte echo + close, both proxies in one process)`);
  await waitUntil(async () => (await a.liveConnections()) === 0 && (await b.liveConnections()) === 0, 5000, () => 'all recorded');
  t.is(a.recordedTwice() + b.recordedTwice(), 0);
});

/** Sends `n` 64-byte messages one at a time over `s`, each after the previous echo; returns sorted RTTs (ms). */
async function pingPong(s: import('node:net').Socket, n: number): Promise<number[]> {
  const rtts: number[] = [];
  const msg = Buffer.alloc(64, 7);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    s.write(msg);
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (c: Buffer): void => {
        got += c.length;
        if (got >= 64) {
          s.off('data', onData);
          resolve();
        }
      };
      s.on('data', onData);
    });
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return rtts.sort((x, y) => x - y);
}

test.serial('latency: 64-byte request/response round trips through two proxies vs direct', async (t) => {
  const N = 500;
  const direct = connect({ host: SERVER, port: 8080 });
  await once(direct, 'connect');
  const d = await pingPong(direct, N);
  direct.destroy();
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  const p = await pingPong(s, N);
  s.destroy();
  const q = (xs: number[], f: number): string => (xs[Math.min(xs.length - 1, Math.floor(xs.length * f))] as number).toFixed(3);
  t.log(`direct:     p50 ${q(d, 0.5)}ms p99 ${q(d, 0.99)}ms`);
  t.log(`via 2 proxies (SOCKS5 → HBONE → app, one process): p50 ${q(p, 0.5)}ms p99 ${q(p, 0.99)}ms`);
  t.is(p.length, N);
});

test.serial('a workload that leaves the state: its metric series and listeners go, its certificate is forgotten', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  await exchange(s, Buffer.from('series'));
  await waitUntil(async () => (await a.liveConnections()) === 0, 5000, () => 'recorded');
  const before = await a.metrics();
  t.true(before.samples.some((s) => s.name === 'istio_tcp_connections_opened_total' && s.labels['source_workload'] === 'client-deploy'));
  mesh.writeConfig({
    workloads: [{ name: 'server', ips: [SERVER], node: 'node-b', services: { 'default/echo.default.svc.cluster.local': { 80: 8080 } } }],
    services: [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: VIP, ports: { 80: 8080 } }],
  });
  await waitUntil(() => !a.app.runtime.currentAddresses().listeners.some((l) => l.address.ip === CLIENT), 5000, () => 'client listeners closed');
  const after = await a.metrics();
  t.false(after.samples.some((s) => s.name.startsWith('istio_tcp_') && s.labels['source_workload'] === 'client-deploy'), 'series naming the removed workload are gone');
  t.is(a.app.certs.dump().find((d) => d.identity === SpiffeId.of('cluster.local', 'default', 'client').toString()), undefined);
});

test.serial('POST /certificates/reissue re-issues the node\'s workload certificates now (new serial in /config_dump)', async (t) => {
  const admin = b.addrs.admin!;
  const serials = async (): Promise<string[]> => {
    const dump = JSON.parse((await httpRequest(admin, '/config_dump')).body) as { certificates: { serialNumber?: string; certChain?: { serialNumber: string }[] }[] };
    return dump.certificates.map((c) => JSON.stringify(c.serialNumber ?? c.certChain?.[0]?.serialNumber)).sort();
  };
  const before = await serials();
  t.true(before.length >= 1);
  t.is((await httpRequest(admin, '/certificates/reissue', 'GET')).status, 405);
  const r = await httpRequest(admin, '/certificates/reissue', 'POST');
  t.is(r.status, 200);
  t.is((JSON.parse(r.body) as { queued: number }).queued, before.length);
  let after = before;
  for (let i = 0; i < 100 && after.some((s) => before.includes(s)); i++) {
    await new Promise((res) => setTimeout(res, 50));
    after = await serials();
  }
  t.is(after.length, before.length);
  t.false(after.some((s) => before.includes(s)), 'every certificate was replaced');
});
