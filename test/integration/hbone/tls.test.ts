import test from 'ava';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as http2 from 'node:http2';
import { ProxyError } from '../../../src/errors';
import { SpiffeId } from '../../../src/identity/spiffe';
import { HBONE_SECURE_CONTEXT_OPTIONS } from '../../../src/transport/hbone/tls';
import { StaticCerts, TestCa } from './certs-helper';
import { CLIENT_ID, closeServer, echo, eventually, listen, readAll, startApp, startHbone, SERVER_ID } from './fixture';
import { HbonePool } from '../../../src/transport/hbone/pool';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';

test('server certificate without an expected SAN is refused at the handshake (TLS_PEER_IDENTITY)', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const want = 'spiffe://cluster.local/ns/other/sa/someone-else';
  const err = await t.throwsAsync(side.pool.connect(side.target(app, { expectedIdentities: [want] })), { instanceOf: ProxyError });
  t.is(err?.reason, 'TLS_PEER_IDENTITY');
  t.true(err?.message.includes(want), 'message lists the expected identity');
  t.true(err?.message.includes(SERVER_ID), 'message lists the actual identity');
  t.is(side.pool.stats().dialFailures, 1);
});

test('any one of several expected identities is enough; the matched SAN is the peer identity', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const hs = await side.pool.connect(side.target(app, { expectedIdentities: ['spiffe://cluster.local/ns/x/sa/y', SERVER_ID] }));
  t.is(hs.peerIdentity.toString(), SERVER_ID);
  hs.stream.end('k');
  t.is((await readAll(hs.stream)).toString(), 'k');
});

test('client from a foreign trust domain (same root) is refused by the server (TLS_TRUST_DOMAIN)', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const foreign = side.ca.issue(['spiffe://evil.example/ns/default/sa/client']);
  const certs = new StaticCerts().add(foreign);
  const pool = new HbonePool({ certs, logger: createLogger({ level: 'silent', format: 'json', destination: new LogCollector() }), connectTimeout: 2000 });
  t.teardown(() => pool.destroy());
  const err = await t.throwsAsync(pool.connect(side.target(app, { srcIdentity: foreign.identity })), { instanceOf: ProxyError });
  t.true(['H2_HANDSHAKE_FAILURE', 'TLS_FAILURE'].includes(err?.reason ?? ''), `client-side reason ${err?.reason}`);
  await eventually(() => side.logs.find((l) => l['reason'] === 'TLS_TRUST_DOMAIN').length === 1, 3000, 'server log');
  t.is(side.server.stats().connections, 0);
});

test('client certificate from an untrusted root is refused by the server (TLS_UNKNOWN_ISSUER)', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const other = new TestCa('other-root');
  t.teardown(() => other.cleanup());
  const rogue = other.issue([CLIENT_ID], [side.ca.rootPem]);
  const pool = new HbonePool({ certs: new StaticCerts().add(rogue), logger: createLogger({ level: 'silent', format: 'json', destination: new LogCollector() }) });
  t.teardown(() => pool.destroy());
  await t.throwsAsync(pool.connect(side.target(app)), { instanceOf: ProxyError });
  await eventually(() => side.logs.find((l) => l['reason'] === 'TLS_UNKNOWN_ISSUER').length === 1, 3000, 'server log');
  t.regex(String(side.logs.find((l) => l['reason'] === 'TLS_UNKNOWN_ISSUER')[0]?.['err']), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
});

test('server certificate from an untrusted root is refused by the client (TLS_UNKNOWN_ISSUER)', async (t) => {
  const app = await startApp(t, echo);
  const other = new TestCa('other-root');
  t.teardown(() => other.cleanup());
  const side = await startHbone(t);
  const rogueServer = other.issue([SERVER_ID], [side.ca.rootPem]);
  (side.server as unknown as { o: { resolveCert: () => Promise<unknown> } }).o.resolveCert = async () => rogueServer;
  const err = await t.throwsAsync(side.pool.connect(side.target(app)), { instanceOf: ProxyError });
  t.is(err?.reason, 'TLS_UNKNOWN_ISSUER');
});

test('no client certificate → refused before any HTTP/2 (TLS_NO_CLIENT_CERT in the server log)', async (t) => {
  const side = await startHbone(t);
  const sock = tls.connect({ host: '127.0.0.1', port: side.hboneAddr.port, ca: side.ca.rootPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  const err = await new Promise<Error | null>((resolve) => {
    sock.once('error', (e) => resolve(e));
    sock.once('close', () => resolve(null));
  });
  t.truthy(err);
  await eventually(() => side.logs.find((l) => l['reason'] === 'TLS_NO_CLIENT_CERT').length === 1, 3000, 'server log');
  t.is(side.server.stats().connections, 0);
});

test('wrong ALPN (http/1.1 only) and plaintext h2c are rejected before HTTP/2', async (t) => {
  const side = await startHbone(t);
  const s1 = tls.connect({ host: '127.0.0.1', port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  s1.on('error', () => undefined);
  await new Promise((r) => s1.once('close', r));
  const h2c = http2.connect(`http://127.0.0.1:${side.hboneAddr.port}`);
  h2c.on('error', () => undefined);
  await new Promise((r) => h2c.once('close', r));
  t.is(side.server.stats().connections, 0);
  await eventually(() => side.logs.find((l) => l['msg'] === 'connection failed').length >= 2, 3000, 'two failures logged');
});

test('the client sends no SNI and offers only TLS 1.3 with the two AES-GCM suites and ALPN h2', async (t) => {
  const ca = new TestCa();
  t.teardown(() => ca.cleanup());
  const serverCert = ca.issue([SERVER_ID]);
  const clientCert = ca.issue([CLIENT_ID]);
  const seen: { servername: unknown; alpn: unknown; proto: unknown; cipher: unknown }[] = [];
  const srv = net.createServer((raw) => {
    const s = new tls.TLSSocket(raw, { isServer: true, secureContext: serverCert.secureContext, ALPNProtocols: ['h2'] });
    s.on('error', () => undefined);
    s.once('secure', () => {
      seen.push({ servername: s.servername, alpn: s.alpnProtocol, proto: s.getProtocol(), cipher: s.getCipher().standardName });
      s.destroy();
    });
  });
  const addr = await listen(srv);
  t.teardown(() => closeServer(srv));
  const pool = new HbonePool({ certs: new StaticCerts().add(clientCert), logger: createLogger({ level: 'silent', format: 'json', destination: new LogCollector() }) });
  t.teardown(() => pool.destroy());
  await t.throwsAsync(
    pool.connect({ nextHop: addr, authority: '127.0.0.1:80', expectedIdentities: [SERVER_ID], srcIdentity: SpiffeId.parse(CLIENT_ID), peerUid: 'u', headers: {} }),
    { instanceOf: ProxyError },
  );
  t.is(seen.length, 1);
  t.is(seen[0]?.servername, false, 'no SNI');
  t.is(seen[0]?.alpn, 'h2');
  t.is(seen[0]?.proto, 'TLSv1.3');
  t.true(['TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256'].includes(String(seen[0]?.cipher)));
  t.is(HBONE_SECURE_CONTEXT_OPTIONS.minVersion, 'TLSv1.3');
});
