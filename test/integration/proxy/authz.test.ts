import test from 'ava';
import { connect } from 'node:net';
import { TestMesh, waitUntil, type LocalConfigDoc, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, waitClosed, type EchoServer } from '../../helpers/echo-server';
import { endOf } from '../../helpers/two-nodes';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { HbonePool } from '../../../src/transport/hbone/pool';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { SpiffeId } from '../../../src/identity/spiffe';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import type { ProxyError } from '../../../src/errors';

/**
 * Authorization on the inbound side: a DENY policy (401 → SOCKS 0x02, reason DENY with the
 * policy named), STRICT on plaintext 15006, and late rejection when the policy file changes.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const UNTRUSTED = ip(11);
const SERVER = ip(20);
const SERVER_PLAIN = ip(21);

const DENY_UNTRUSTED = {
  name: 'deny-untrusted',
  namespace: 'default',
  scope: 'WorkloadSelector',
  action: 'Deny',
  dryRun: false,
  rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/untrusted' }] }]]],
};
const DENY_CLIENT = { ...DENY_UNTRUSTED, name: 'deny-client', rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/client' }] }]]] };
const STRICT = { name: 'istio_converted_static_strict', namespace: 'istio-system', scope: 'WorkloadSelector', action: 'Deny', dryRun: false, rules: [[[{ notPrincipals: ['Presence'] }]]] };

function config(policies: string[]): LocalConfigDoc {
  return {
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'untrusted', ips: [UNTRUSTED], node: 'node-a' },
      { name: 'server', ips: [SERVER, SERVER_PLAIN], node: 'node-b', authorizationPolicies: policies },
    ],
    policies: [DENY_UNTRUSTED, DENY_CLIENT, STRICT],
  };
}

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig(config(['default/deny-untrusted', 'istio-system/istio_converted_static_strict']));
  await mesh.startCa();
  app = await startEchoServer(SERVER, 8080);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
  // Plaintext inbound on the server's second IP, port 8080 (no capture: the local address is the destination).
  b = await mesh.startNode('node-b', { INBOUND_PLAINTEXT_ADDR: `${SERVER_PLAIN}:8080` });
});

test.after.always(async () => {
  await mesh?.close();
  await app?.close();
});

test.serial('a DENY policy: 401 on HBONE, SOCKS reply 0x02, reason DENY + policy in metrics and access logs', async (t) => {
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, UNTRUSTED));
  t.is((err as SocksReplyError).code, 0x02);
  await waitUntil(() => b.access('connection complete').length === 1, 5000, () => 'inbound deny log');
  const line = b.access('connection complete')[0]!;
  t.like(line, { level: 'warn', reason: 'DENY', policy: 'default/deny-untrusted', direction: 'inbound', 'src.identity': 'spiffe://cluster.local/ns/default/sa/untrusted', 'dst.hbone_addr': `${SERVER}:8080` });
  t.regex(String(line['error']), /explicitly denied by: default\/deny-untrusted/);
  const mb = await b.metrics();
  const closed = mb.samples.find((s) => s.name === 'istio_tcp_connections_closed_total')!;
  t.like(closed.labels, { reporter: 'destination', response_flags: 'DENY', source_principal: 'spiffe://cluster.local/ns/default/sa/untrusted', connection_security_policy: 'mutual_tls' });
  t.is(sumSamples(mb, 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'DENY' }), 1);
  t.is(sumSamples(mb, 'istio_tcp_connections_failed_total'), 1);
  await waitUntil(() => a.access('connection complete').length === 1, 5000, () => 'outbound deny log');
  const outLine = a.access('connection complete')[0]!;
  t.is(outLine['reason'], 'DENY');
  t.is(app.peers.length, 0, 'the app was never dialled');

  // The allowed client still gets through HBONE (the STRICT policy passes: HBONE carries an identity).
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.is((await exchange(s, Buffer.from('ok'))).toString(), 'ok');
});

test.serial('STRICT: plaintext to the inbound plaintext listener is refused (no peer identity)', async (t) => {
  const c = connect({ host: SERVER_PLAIN, port: 8080, localAddress: CLIENT });
  c.on('error', () => undefined);
  const r = await waitClosed(c);
  t.is(r.data.length, 0);
  await waitUntil(() => b.access('connection complete').some((l) => l['policy'] === 'istio-system/istio_converted_static_strict'), 5000, () => 'strict log');
  const line = b.access('connection complete').find((l) => l['policy'] === 'istio-system/istio_converted_static_strict')!;
  t.like(line, { reason: 'DENY', direction: 'inbound', 'dst.addr': `${SERVER_PLAIN}:8080`, 'dst.workload': 'server' });
  t.false('src.identity' in line);
  const m = await b.metrics();
  t.is(sumSamples(m, 'istio_tcp_connections_closed_total', { response_flags: 'DENY', connection_security_policy: 'unknown', source_principal: 'unknown' }), 1);
});

test.serial('late rejection: rewriting LOCAL_XDS_PATH with a policy that denies a live connection closes it (DENY_LATE)', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.teardown(() => s.destroy());
  s.write('before');
  await new Promise<void>((r) => s.once('data', () => r()));
  const closed = endOf(s, 10_000);
  mesh.writeConfig(config(['default/deny-untrusted', 'default/deny-client']));
  t.is(await closed, 'ECONNRESET', 'a connection closed by a policy change is reset at the client, not ended');
  await waitUntil(() => b.access('connection closed due to policy change').length === 1, 5000, () => 'late rejection log');
  const line = b.access('connection closed due to policy change')[0]!;
  t.like(line, { level: 'warn', reason: 'DENY_LATE', policy: 'default/deny-client', bytes_recv: 6, bytes_sent: 6 });
  const m = await b.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reason: 'DENY_LATE' }), 1);
  // New connections from the client are now denied up front.
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT));
  t.is((err as SocksReplyError).code, 0x02);
});

test.serial('inbound validation: an authority that is not a local workload → 400 UNKNOWN_DESTINATION; our own port → 503 ILLEGAL_PORT (early failures, no istio_tcp series)', async (t) => {
  const pool = new HbonePool({ certs: a.app.certs, logger: createLogger({ level: 'silent', format: 'json', destination: new LogCollector() }) });
  t.teardown(() => pool.destroy());
  const target = (authority: string) => ({
    nextHop: makeSocketAddr(SERVER, 15008),
    authority,
    expectedIdentities: ['spiffe://cluster.local/ns/default/sa/server'],
    srcIdentity: SpiffeId.of('cluster.local', 'default', 'client'),
    peerUid: 'cluster1//v1/Pod/default/server',
    headers: {},
    localAddress: CLIENT,
  });
  const before = sumSamples(await b.metrics(), 'istio_tcp_connections_opened_total');
  const e400 = await t.throwsAsync(pool.connect(target(`${ip(99)}:8080`)));
  t.is((e400 as ProxyError).details['status'], 400);
  const e503 = await t.throwsAsync(pool.connect(target(`${SERVER}:15001`)));
  t.is((e503 as ProxyError).details['status'], 503);
  await waitUntil(() => b.logs.find((l) => l['msg'] === 'connection failed' && l['scope'] === 'access').length >= 2, 5000, () => 'early failure logs');
  const unknown = b.logs.find((l) => l['reason'] === 'UNKNOWN_DESTINATION')[0]!;
  t.like(unknown, { level: 'warn', direction: 'inbound', 'dst.hbone_addr': `${ip(99)}:8080`, 'src.identity': 'spiffe://cluster.local/ns/default/sa/client' });
  t.is(b.logs.find((l) => l['reason'] === 'ILLEGAL_PORT').length, 1);
  const m = await b.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'UNKNOWN_DESTINATION' }), 1);
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'ILLEGAL_PORT' }), 1);
  t.is(sumSamples(m, 'istio_tcp_connections_opened_total'), before);
});
