import test, { type ExecutionContext } from 'ava';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { TestMesh, waitUntil, type LocalConfigDoc, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, type EchoServer } from '../../helpers/echo-server';
import { socksConnect, socksReplyCode } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { FixedCertSource, MeshCerts } from '../../helpers/mesh-certs';
import { HbonePool } from '../../../src/transport/hbone/pool';
import { HboneServer } from '../../../src/transport/hbone/server';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { WorkloadCertificate } from '../../../src/identity/types';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { ProxyError, type Reason } from '../../../src/errors';

/**
 * Peer certificates through the real node proxy: every certificate here is signed by the
 * mesh's own dev-CA root (or an intermediate of it), so only the identity and validity
 * rules can refuse it. Clients dial node-b's 15008 with the real HBONE pool; node-a's real
 * outbound pool dials a real HboneServer ("rogue") that presents the certificate under test.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const ROGUE = ip(30);

const TD = 'cluster.local';
const DENIED = `spiffe://${TD}/ns/x/sa/y`;
const ROGUE_ID = `spiffe://${TD}/ns/default/sa/rogue`;
const DENY_Y = { name: 'deny-y', namespace: 'default', scope: 'WorkloadSelector', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: `${TD}/ns/x/sa/y` }] }]]] };

const CONFIG: LocalConfigDoc = {
  workloads: [
    { name: 'client', ips: [CLIENT], node: 'node-a' },
    { name: 'server', ips: [SERVER], node: 'node-b', authorizationPolicies: ['default/deny-y'] },
    { name: 'rogue', ips: [ROGUE], node: 'node-r' },
  ],
  policies: [DENY_Y],
};

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;
let certs: MeshCerts;
let rogue: { server: HboneServer; listener: Server; cert: WorkloadCertificate | undefined; connects: number };

const silent = () => createLogger({ level: 'silent', format: 'json', destination: new LogCollector() });

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig(CONFIG);
  await mesh.startCa();
  certs = await MeshCerts.load(join(mesh.dir, 'ca'));
  app = await startEchoServer(SERVER, 8080);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, CONNECT_TIMEOUT: '3s' });
  b = await mesh.startNode('node-b');
  const server = new HboneServer({
    logger: silent(),
    resolveCert: async () => rogue.cert,
    onConnect: (req) => {
      rogue.connects++;
      const s = req.accept();
      s.pipe(s);
    },
  });
  const listener = createServer((sock) => server.handleSocket(sock, makeSocketAddr(ROGUE, 15008)));
  await new Promise<void>((r) => listener.listen({ host: ROGUE, port: 15008 }, r));
  rogue = { server, listener, cert: undefined, connects: 0 };
});

test.after.always(async () => {
  rogue?.server.destroy();
  await new Promise((r) => (rogue ? rogue.listener.close(r) : r(undefined)));
  await mesh?.close();
  await app?.close();
});

const HOUR = 3600_000;
const workload = (uris: string[], extra: { notBefore?: number; notAfter?: number } = {}): WorkloadCertificate =>
  certs.workload(SpiffeId.parse(DENIED), { uris, ...extra });

/** Dials node-b's 15008 as a client presenting `cert` (the real pool) and returns how it failed. */
async function dialServer(cert: WorkloadCertificate): Promise<unknown> {
  const pool = new HbonePool({ certs: new FixedCertSource(cert), logger: silent(), connectTimeout: 3000 });
  try {
    const s = await pool.connect({
      nextHop: makeSocketAddr(SERVER, 15008),
      authority: `${SERVER}:8080`,
      expectedIdentities: [`spiffe://${TD}/ns/default/sa/server`],
      srcIdentity: cert.identity,
      peerUid: 'cluster1//v1/Pod/default/server',
      headers: {},
      localAddress: CLIENT,
    });
    s.stream.destroy();
    return null;
  } catch (err) {
    return err;
  } finally {
    pool.destroy();
  }
}

/** node-b refused the handshake: one WARN line and one count with `reason`, and the app saw nothing. */
async function refusedOnServer(t: ExecutionContext, reason: Reason, message: RegExp, appPeers = 0): Promise<void> {
  await waitUntil(() => b.logs.find((l) => l['reason'] === reason).length >= 1, 5000, () => `node-b ${reason} log`);
  const lines = b.logs.find((l) => l['reason'] === reason);
  t.is(lines.length, 1, `${reason} logged once`);
  t.like(lines[0], { level: 'warn', msg: 'connection failed' });
  t.regex(String(lines[0]?.['err']), message);
  t.is(sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason }), 1);
  t.is(app.peers.length, appPeers, 'the destination app received no new connection');
}

test.serial('15008: a mesh-signed client certificate with a foreign SPIFFE SAN first and the DENIED identity second is refused; the DENY is not bypassed', async (t) => {
  const err = await dialServer(workload(['spiffe://evil.local/ns/x/sa/y', DENIED]));
  t.true(err instanceof ProxyError, 'the forged client did not get a stream');
  await refusedOnServer(t, 'TLS_SPIFFE_SAN', new RegExp(`2 SPIFFE URI SANs \\[spiffe://evil\\.local/ns/x/sa/y, ${DENIED}\\]; exactly one is required`));
  t.is(sumSamples(await b.metrics(), 'istio_tcp_connections_opened_total'), 0, 'no connection reached authorization');

  // The same identity alone is authenticated and then denied by the policy: the policy is in force.
  const denied = await dialServer(workload([DENIED]));
  t.is((denied as ProxyError).details['status'], 401);
  await waitUntil(() => b.access('connection complete').some((l) => l['reason'] === 'DENY'), 5000, () => 'deny log');
  t.like(b.access('connection complete').find((l) => l['reason'] === 'DENY'), { 'src.identity': DENIED, policy: 'default/deny-y' });
  t.is(app.peers.length, 0);
});

test.serial('15008: the same two SPIFFE SANs in the other order are refused too', async (t) => {
  const before = sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'TLS_SPIFFE_SAN' });
  t.true((await dialServer(workload([DENIED, 'spiffe://evil.local/ns/x/sa/y']))) instanceof ProxyError);
  await waitUntil(() => b.logs.find((l) => l['reason'] === 'TLS_SPIFFE_SAN').length === 2, 5000, () => 'second TLS_SPIFFE_SAN log');
  t.is(sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'TLS_SPIFFE_SAN' }), before + 1);
});

test.serial('15008: a client whose only SPIFFE SAN is in a foreign trust domain is refused (TLS_TRUST_DOMAIN)', async (t) => {
  t.true((await dialServer(workload(['spiffe://evil.local/ns/x/sa/y']))) instanceof ProxyError);
  await refusedOnServer(t, 'TLS_TRUST_DOMAIN', /identity spiffe:\/\/evil\.local\/ns\/x\/sa\/y is not in trust domain cluster\.local/);
});

test.serial('15008: expired, not-yet-valid and truncated-chain client certificates are each refused with their own reason', async (t) => {
  const now = Date.now();
  t.true((await dialServer(workload([DENIED], { notBefore: now - 3 * HOUR, notAfter: now - HOUR }))) instanceof ProxyError);
  await refusedOnServer(t, 'TLS_CERT_EXPIRED', /certificate rejected: CERT_HAS_EXPIRED: .*valid .* to /);
  t.true((await dialServer(workload([DENIED], { notBefore: now + HOUR, notAfter: now + 3 * HOUR }))) instanceof ProxyError);
  await refusedOnServer(t, 'TLS_CERT_NOT_YET_VALID', /certificate rejected: CERT_NOT_YET_VALID/);

  // Issued by an intermediate of the mesh root: accepted with the intermediate, refused without it.
  const inter = certs.intermediate('test intermediate');
  const client = `spiffe://${TD}/ns/default/sa/client`;
  const complete = certs.workload(SpiffeId.parse(client), { uris: [client], issuer: inter }, [inter.certPem]);
  t.is(await dialServer(complete), null, 'a full chain through the intermediate is accepted');
  await waitUntil(() => app.peers.length === 1, 5000, () => 'app connection over the full chain');
  const truncated = certs.workload(SpiffeId.parse(client), { uris: [client], issuer: inter });
  t.true((await dialServer(truncated)) instanceof ProxyError);
  await waitUntil(() => b.logs.find((l) => l['reason'] === 'TLS_UNKNOWN_ISSUER').length >= 1, 5000, () => 'TLS_UNKNOWN_ISSUER log');
  t.is(b.logs.find((l) => l['reason'] === 'TLS_UNKNOWN_ISSUER').length, 1);
  t.regex(String(b.logs.find((l) => l['reason'] === 'TLS_UNKNOWN_ISSUER')[0]?.['err']), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
  t.is(sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'destination', reason: 'TLS_UNKNOWN_ISSUER' }), 1);
  t.is(app.peers.length, 1, 'only the full-chain connection reached the app');
});

test.serial('15008: a chain that ends in another self-signed root is refused as untrusted (TLS_UNTRUSTED)', async (t) => {
  const foreign = certs.foreignRoot('not the mesh root');
  const client = `spiffe://${TD}/ns/default/sa/client`;
  const peers = app.peers.length;
  t.true((await dialServer(certs.workload(SpiffeId.parse(client), { uris: [client], issuer: foreign }, [foreign.certPem]))) instanceof ProxyError);
  await refusedOnServer(t, 'TLS_UNTRUSTED', /certificate rejected: SELF_SIGNED_CERT_IN_CHAIN/, peers);
});

/** node-a's outbound refused the rogue server's certificate: one access line and one count with `reason`. */
async function refusedOnClient(t: ExecutionContext, reason: Reason, message: RegExp): Promise<void> {
  const connects = rogue.connects;
  t.is(await socksReplyCode(a.listener('socks5'), { host: ROGUE, port: 8080 }, CLIENT), 0x01, 'SOCKS general failure');
  await waitUntil(() => a.access('connection complete').some((l) => l['reason'] === reason), 5000, () => `node-a ${reason} access log`);
  const lines = a.access('connection complete').filter((l) => l['reason'] === reason);
  t.is(lines.length, 1, `${reason} logged once`);
  t.like(lines[0], { level: 'error', direction: 'outbound', 'dst.addr': `${ROGUE}:15008`, 'dst.hbone_addr': `${ROGUE}:8080` });
  t.regex(String(lines[0]?.['error']), message);
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'source', reason }), 1);
  t.is(rogue.connects, connects, 'no CONNECT reached the rogue server');
}

test.serial('client pool: a server certificate with two SPIFFE SANs is refused even though one is the expected identity', async (t) => {
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: ['spiffe://evil.local/ns/default/sa/rogue', ROGUE_ID] });
  await refusedOnClient(t, 'TLS_SPIFFE_SAN', /peer .*:15008 certificate carries 2 SPIFFE URI SANs/);
});

test.serial('client pool: another identity (TLS_PEER_IDENTITY) and a foreign trust domain (TLS_TRUST_DOMAIN) are refused', async (t) => {
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [`spiffe://${TD}/ns/default/sa/other`] });
  await refusedOnClient(t, 'TLS_PEER_IDENTITY', new RegExp(`presented identity spiffe://${TD}/ns/default/sa/other, expected one of \\[${ROGUE_ID}\\]`));
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: ['spiffe://evil.local/ns/default/sa/rogue'] });
  await refusedOnClient(t, 'TLS_TRUST_DOMAIN', /presented identity spiffe:\/\/evil\.local\/ns\/default\/sa\/rogue/);
});

test.serial('client pool: expired, not-yet-valid, truncated-chain and foreign-root server certificates are each refused with their own reason', async (t) => {
  const now = Date.now();
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [ROGUE_ID], notBefore: now - 3 * HOUR, notAfter: now - HOUR });
  await refusedOnClient(t, 'TLS_CERT_EXPIRED', /CERT_HAS_EXPIRED/);
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [ROGUE_ID], notBefore: now + HOUR, notAfter: now + 3 * HOUR });
  await refusedOnClient(t, 'TLS_CERT_NOT_YET_VALID', /CERT_NOT_YET_VALID/);
  const inter = certs.intermediate('rogue intermediate');
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [ROGUE_ID], issuer: inter });
  await refusedOnClient(t, 'TLS_UNKNOWN_ISSUER', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
  const foreign = certs.foreignRoot('rogue root');
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [ROGUE_ID], issuer: foreign }, [foreign.certPem]);
  await refusedOnClient(t, 'TLS_UNTRUSTED', /SELF_SIGNED_CERT_IN_CHAIN/);

  // The same server with its intermediate in the chain is accepted (bytes flow end to end).
  rogue.cert = certs.workload(SpiffeId.parse(ROGUE_ID), { uris: [ROGUE_ID], issuer: inter }, [inter.certPem]);
  const s = await socksConnect(a.listener('socks5'), { host: ROGUE, port: 8080 }, CLIENT);
  t.is((await exchange(s, Buffer.from('full chain'))).toString(), 'full chain');
  t.is(rogue.connects, 1);
});
