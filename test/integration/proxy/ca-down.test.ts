import test, { type ExecutionContext } from 'ava';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { TestMesh, waitUntil, type LocalConfigDoc, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, waitClosed, type EchoServer } from '../../helpers/echo-server';
import { socksConnect, socksReplyCode } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { httpRequest } from '../../helpers/http';
import { loadOrCreateRoot, ROOT_CERT_FILE } from '../../../src/ca/root';

/**
 * Fail closed without identity or state, through the real node proxy: the CA never started
 * or stopped, or the source workload not in the state yet. Every connection, SOCKS5 or through the
 * fixed-destination outbound listener (the captured path), ends without a byte reaching the
 * destination app, with the reason in the access log and metrics; readiness names the cause.
 */

/** A loopback port nothing listens on (connects are refused). */
async function closedPort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host, port: 0 }, r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A connection to the outbound listener at `vip:80` from `src`: what came back before the close. */
async function captured(vip: string, src: string): Promise<Buffer> {
  const s = connect({ host: vip, port: 80, localAddress: src });
  s.write('hello app');
  return (await waitClosed(s)).data;
}

function socksRefusal(node: TestNode, dst: string, src: string): Promise<number | null> {
  return socksReplyCode(node.listener('socks5'), { host: dst, port: 8080 }, src);
}

async function readiness(node: TestNode): Promise<{ status: number; body: string }> {
  const r = await httpRequest(node.addrs.readiness!, '/healthz/ready');
  return { status: r.status, body: r.body };
}

function meshConfig(ip: (n: number) => string, extra: LocalConfigDoc['workloads'] = []): LocalConfigDoc {
  return {
    workloads: [
      { name: 'client', ips: [ip(10)], node: 'node-a' },
      { name: 'server', ips: [ip(20)], node: 'node-b', services: { 'default/echo.default.svc.cluster.local': { 80: 8080 } } },
      ...extra,
    ],
    services: [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: ip(50), ports: { 80: 8080 } }],
  };
}

async function setup(t: ExecutionContext, nodes: string[]): Promise<{ mesh: TestMesh; ip: (n: number) => string; app: EchoServer }> {
  const ip = loopbackBlock();
  const mesh = new TestMesh(nodes);
  const app = await startEchoServer(ip(20), 8080);
  t.teardown(async () => {
    await mesh.close();
    await app.close();
  });
  return { mesh, ip, app };
}

test.serial('CA never started: SOCKS and captured connections fail closed with CA_UNREACHABLE, no byte reaches the app, readiness names the CA', async (t) => {
  const { mesh, ip, app } = await setup(t, ['node-a']);
  mesh.writeConfig(meshConfig(ip));
  const caDir = join(mesh.dir, 'absent-ca');
  await loadOrCreateRoot(caDir, 'cluster.local', Date.now());
  const caAddress = `https://127.0.0.1:${await closedPort('127.0.0.1')}`;
  const a = await mesh.startNode('node-a', { CA_ADDRESS: caAddress, CA_ROOT_CA: join(caDir, ROOT_CERT_FILE), SOCKS5_ADDR: `${ip(1)}:0`, OUTBOUND_ADDR: `${ip(50)}:80`, CONNECT_TIMEOUT: '3s' }, { waitReady: false });
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'workload certificate fetch failed' && l['reason'] === 'CA_UNREACHABLE').length >= 1, 10_000, () => 'CA fetch failure');

  const ready = await readiness(a);
  t.is(ready.status, 500);
  t.regex(ready.body, new RegExp(`certificates \\(1 of 1 local identities without a certificate from CA ${caAddress.replace(/\./g, '\\.')}; CA_UNREACHABLE: `));

  t.is(await socksRefusal(a, ip(20), ip(10)), 0x01, 'SOCKS general failure');
  t.is((await captured(ip(50), ip(10))).length, 0, 'the captured client got no byte back');
  await waitUntil(() => a.access('connection complete').length >= 2, 5000, () => 'two access lines');
  const lines = a.access('connection complete');
  t.is(lines.length, 2);
  for (const l of lines) {
    t.like(l, { level: 'error', reason: 'CA_UNREACHABLE', direction: 'outbound', 'src.workload': 'client', 'dst.hbone_addr': `${ip(20)}:8080` });
    t.regex(String(l['error']), /no certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/client: /);
  }
  const m = await a.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reporter: 'source', reason: 'CA_UNREACHABLE' }), 2);
  t.is(sumSamples(m, 'istio_tcp_connections_failed_total', { response_flags: 'IDENTITY_ERROR' }), 2);
  t.is(app.peers.length, 0, 'nothing reached the destination app, not even as plaintext');
});

test.serial('CA stopped: cached certificates keep serving; an identity without one (a new local workload, a node started later) fails closed', async (t) => {
  const { mesh, ip, app } = await setup(t, ['node-a', 'node-b']);
  const local = await startEchoServer(ip(30), 8080);
  t.teardown(() => local.close());
  const localServer = { name: 'local-server', ips: [ip(30)], node: 'node-a' };
  mesh.writeConfig(meshConfig(ip, [localServer]));
  await mesh.startCa();
  const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${ip(1)}:0`, OUTBOUND_ADDR: `${ip(50)}:80`, CONNECT_TIMEOUT: '3s' });
  await mesh.stopCa();

  // node-a's certificates came before the stop: same-node HBONE still works.
  const ok = await socksConnect(a.listener('socks5'), { host: ip(30), port: 8080 }, ip(10));
  t.is((await exchange(ok, Buffer.from('cached'))).toString(), 'cached');

  // node-b starts after the stop: not ready (naming the CA), and refuses inbound HBONE.
  const b = await mesh.startNode('node-b', {}, { waitReady: false });
  await waitUntil(() => b.logs.find((l) => l['msg'] === 'workload certificate fetch failed' && l['reason'] === 'CA_UNREACHABLE').length >= 1, 10_000, () => 'node-b CA fetch failure');
  const ready = await readiness(b);
  t.is(ready.status, 500);
  t.regex(ready.body, /certificates \(1 of 1 local identities without a certificate from CA https:\/\/.*; CA_UNREACHABLE: /);
  t.is(await socksRefusal(a, ip(20), ip(10)), 0x01);
  t.is((await captured(ip(50), ip(10))).length, 0);
  await waitUntil(() => b.logs.find((l) => l['msg'] === 'connection failed' && l['reason'] === 'CA_UNREACHABLE').length >= 2, 5000, () => 'node-b refusals');
  t.is(sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'CA_UNREACHABLE' }), 2);
  t.is(app.peers.length, 0, 'the app behind node-b received nothing');

  // A workload that appears on node-a after the stop has no certificate: its connections fail closed.
  mesh.writeConfig(meshConfig(ip, [localServer, { name: 'late', ips: [ip(11)], node: 'node-a' }]));
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'workload certificate fetch failed' && l['identity'] === 'spiffe://cluster.local/ns/default/sa/late').length >= 1, 10_000, () => 'late identity fetch failure');
  t.is(await socksRefusal(a, ip(30), ip(11)), 0x01);
  await waitUntil(() => a.access('connection complete').some((l) => l['src.workload'] === 'late'), 5000, () => 'late access line');
  t.like(a.access('connection complete').find((l) => l['src.workload'] === 'late'), { reason: 'CA_UNREACHABLE', 'dst.hbone_addr': `${ip(30)}:8080` });
  t.is(local.peers.length, 1, 'only the connection with a cached certificate reached the local app');
});

test.serial('state without the source workload yet (a pod the proxy has not learned of): fail closed with UNKNOWN_SOURCE, never as plaintext; once it is known the same connection works', async (t) => {
  const { mesh, ip } = await setup(t, ['node-a']);
  const server = await startEchoServer(ip(30), 8080);
  t.teardown(() => server.close());
  // The destination is a known mesh (HBONE) workload; only the source is missing.
  const serverWl = { name: 'server', ips: [ip(30)], node: 'node-a' };
  mesh.writeConfig({ workloads: [serverWl] });
  await mesh.startCa();
  const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${ip(1)}:0`, OUTBOUND_ADDR: `${ip(50)}:80`, WORKLOAD_WAIT_TIMEOUT: '300ms' });

  t.is(await socksRefusal(a, ip(30), ip(10)), 0x01);
  t.is((await captured(ip(50), ip(10))).length, 0);
  await waitUntil(() => a.logs.find((l) => l['reason'] === 'UNKNOWN_SOURCE').length >= 2, 5000, () => 'two UNKNOWN_SOURCE failures');
  for (const l of a.logs.find((x) => x['reason'] === 'UNKNOWN_SOURCE')) {
    t.like(l, { msg: 'connection failed', scope: 'access', direction: 'outbound' });
    t.regex(String(l['error']), new RegExp(`source ${ip(10).replace(/\./g, '\\.')} is not a workload on node "node-a" after waiting 300ms`));
  }
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'source', reason: 'UNKNOWN_SOURCE' }), 2);
  t.is(server.peers.length, 0, 'no plaintext reached the app');

  mesh.writeConfig({ workloads: [{ name: 'client', ips: [ip(10)], node: 'node-a' }, serverWl] });
  await waitUntil(() => a.app.state.findWorkloadByUid('cluster1//v1/Pod/default/client') !== undefined, 5000, () => 'client workload applied');
  const s = await socksConnect(a.listener('socks5'), { host: ip(30), port: 8080 }, ip(10));
  t.is((await exchange(s, Buffer.from('now meshed'))).toString(), 'now meshed');
  await waitUntil(() => ['inbound', 'outbound'].every((d) => a.access('connection complete').some((l) => l['direction'] === d)), 5000, () => 'inbound and outbound access lines');
  t.like(a.access('connection complete').find((l) => l['direction'] === 'outbound'), { 'src.identity': 'spiffe://cluster.local/ns/default/sa/client', 'dst.hbone_addr': `${ip(30)}:8080` });
});
