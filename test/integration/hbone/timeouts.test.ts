import test from 'ava';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { ProxyError } from '../../../src/errors';
import { blackhole } from '../../helpers/blackhole';
import { closeServer, echo, eventually, listen, readAll, startApp, startHbone } from './fixture';

test('connect timeout to a black-holed peer → NETWORK_POLICY with the NetworkPolicy hint', async (t) => {
  const hole = await blackhole(t);
  const side = await startHbone(t, { pool: { connectTimeout: 300 } });
  const started = Date.now();
  const err = await t.throwsAsync(side.pool.connect(side.target('127.0.0.1:80', { nextHop: hole })), { instanceOf: ProxyError });
  t.is(err?.reason, 'NETWORK_POLICY');
  t.is(err?.message, `connect to 127.0.0.1:${hole.port} timed out: maybe a NetworkPolicy is blocking HBONE port 15008`);
  t.true(Date.now() - started < 3000);
  t.is(side.pool.stats().dialFailures, 1);
});

test('20 concurrent connects to a black-holed peer share one dial and all fail fast', async (t) => {
  const hole = await blackhole(t);
  const side = await startHbone(t, { pool: { connectTimeout: 300 } });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => side.pool.connect(side.target('127.0.0.1:80', { nextHop: hole }))));
  t.true(results.every((r) => r.status === 'rejected' && (r.reason as ProxyError).reason === 'NETWORK_POLICY'));
  t.is(side.pool.stats().dials, 1);
});

test('connection refused on the peer port → PEER_UNREACHABLE', async (t) => {
  const tmp = net.createServer();
  const addr = await listen(tmp);
  await closeServer(tmp);
  const side = await startHbone(t);
  const err = await t.throwsAsync(side.pool.connect(side.target('127.0.0.1:80', { nextHop: addr })), { instanceOf: ProxyError });
  t.is(err?.reason, 'PEER_UNREACHABLE');
  t.regex(err?.message ?? '', /ECONNREFUSED/);
});

test('TCP connection that never sends a ClientHello is closed at the handshake timeout', async (t) => {
  const side = await startHbone(t, { server: { handshakeTimeout: 200 } });
  const s = net.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port });
  s.on('error', () => undefined);
  const t0 = Date.now();
  await new Promise((r) => s.once('close', r));
  t.true(Date.now() - t0 >= 150);
  await eventually(() => side.logs.find((l) => l['reason'] === 'HANDSHAKE_TIMEOUT').length === 1, 2000, 'log');
  t.is(side.server.stats().handshaking, 0);
});

test('pending handshakes per peer IP are capped', async (t) => {
  const side = await startHbone(t, { server: { handshakeTimeout: 2000, maxPendingHandshakesPerPeer: 2 } });
  const socks: net.Socket[] = [];
  t.teardown(() => socks.forEach((s) => s.destroy()));
  for (let i = 0; i < 3; i++) {
    const s = net.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port });
    s.on('error', () => undefined);
    socks.push(s);
    await new Promise((r) => s.once('connect', r));
  }
  await new Promise((r) => socks[2]!.once('close', r));
  t.false(socks[0]!.destroyed);
  await eventually(() => side.logs.find((l) => l['reason'] === 'STREAM_LIMIT').length === 1, 2000, 'log');
  t.is(side.server.stats().handshaking, 2);
});

test('TLS done but no HEADERS → first-headers timeout closes the session', async (t) => {
  const side = await startHbone(t, { server: { firstHeadersTimeout: 200 } });
  const sock = tls.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  await new Promise((r) => sock.once('secureConnect', r));
  const session = http2.connect(`https://${side.hboneAddr.ip}:${side.hboneAddr.port}`, { createConnection: () => sock });
  session.on('error', () => undefined);
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  const t0 = Date.now();
  await new Promise((r) => session.once('close', r));
  t.true(Date.now() - t0 >= 150);
  t.true(goaway, 'GOAWAY received before the close');
  await eventually(() => side.logs.find((l) => l['reason'] === 'HEADERS_TIMEOUT').length === 1, 2000, 'log');
});

test('keepalive: a pooled connection whose peer stops answering PINGs is dropped', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t, { pool: { keepalive: { interval: 100, timeout: 300 } } });
  // A relay we can freeze: it stops moving bytes, as a vanished node would.
  let frozen = false;
  const pairs: net.Socket[] = [];
  const relay = net.createServer((c) => {
    const u = net.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port });
    pairs.push(c, u);
    c.on('error', () => undefined);
    u.on('error', () => undefined);
    c.on('data', (d) => !frozen && u.write(d));
    u.on('data', (d) => !frozen && c.write(d));
  });
  const relayAddr = await listen(relay);
  t.teardown(() => {
    pairs.forEach((s) => s.destroy());
    return closeServer(relay);
  });
  const hs = await side.pool.connect(side.target(app, { nextHop: relayAddr }));
  hs.stream.end('alive');
  t.is((await readAll(hs.stream)).toString(), 'alive');
  await new Promise((r) => setTimeout(r, 350));
  t.is(side.pool.stats().sessions, 1, 'PINGs answered while the path works');
  frozen = true;
  await eventually(() => side.pool.stats().sessions === 0, 3000, 'session dropped after missed PING');
  t.true(side.logs.find((l) => String(l['msg']).includes('no PING ACK')).length >= 1);
});
