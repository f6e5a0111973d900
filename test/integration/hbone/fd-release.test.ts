import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { fdCount as fds, settledFdCount as settledFds } from '../../helpers/proc';
import { eventually, startHbone, type HboneSide } from './fixture';

/**
 * Descriptors of connections the HBONE server gives up on (issue 11 defect 4 and the slow
 * peer cases). The clients here never close their side (half-open allowed, never read), as a
 * misbehaving or hostile peer would not: after each timeout the server must release its own
 * descriptor, which is what /proc/self/fd counts (the server runs in this process). Serial:
 * other tests in this file would move the count.
 */

const N = 20;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** A TCP connection that keeps its side open whatever the server does, and never reads. */
function halfOpenTcp(side: HboneSide): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port, allowHalfOpen: true });
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Completes mTLS (client certificate of the mesh), then sends only what `after` writes. */
async function tlsPeer(side: HboneSide, after: (s: tls.TLSSocket) => void): Promise<{ raw: net.Socket; tls: tls.TLSSocket }> {
  const raw = await halfOpenTcp(side);
  const sock = tls.connect({ socket: raw, secureContext: side.clientCert.secureContext, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('secureConnect', r));
  after(sock);
  sock.pause();
  return { raw, tls: sock };
}

/** Writes one byte of `data` per `everyMs` until it runs out or the socket is gone. */
function trickle(s: net.Socket | tls.TLSSocket, data: Buffer, everyMs: number): NodeJS.Timeout {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= data.length || s.destroyed || !s.writable) return clearInterval(timer);
    s.write(data.subarray(i, ++i));
  }, everyMs);
  return timer;
}

async function withPeers(t: ExecutionContext, side: HboneSide, open: () => Promise<net.Socket>, waitMs: number, reason: string): Promise<void> {
  const base = await settledFds();
  const peers: net.Socket[] = [];
  t.teardown(() => peers.forEach((p) => p.destroy()));
  for (let i = 0; i < N; i++) peers.push(await open());
  const open2 = fds();
  t.true(open2 >= base + 2 * N, `each connection holds a client and a server descriptor (${base} → ${open2})`);
  await eventually(() => side.logs.find((l) => l['reason'] === reason).length === N, waitMs, `${N} ${reason} logs`);
  // The server's descriptors go; the clients' (in this process, deliberately left open) stay.
  await eventually(() => fds() <= base + N, 4000, `server descriptors released (now ${fds()}, baseline ${base} + ${N} client sockets)`);
  await eventually(() => side.server.stats().connections === 0 && side.server.stats().handshaking === 0, 2000, 'server holds no connection');
  t.log(`${reason}: fds baseline ${base}, with ${N} peers ${open2}, after the timeout ${fds()} (= baseline + the ${N} open client sockets)`);
  peers.forEach((p) => p.destroy());
  await eventually(() => fds() <= base, 4000, 'back to the baseline once the clients close');
}

test.serial('first-HEADERS timeout: GOAWAY, then the socket is destroyed after a short grace, not left in FIN-WAIT-2 (defect 4)', async (t) => {
  const side = await startHbone(t, { server: { firstHeadersTimeout: 300 } });
  await withPeers(
    t,
    side,
    async () => (await tlsPeer(side, (s) => s.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])))).raw,
    5000,
    'HEADERS_TIMEOUT',
  );
});

test.serial('1 byte/s before the first HEADERS (after mTLS) is cut at the first-HEADERS timeout; descriptors return to the baseline', async (t) => {
  const side = await startHbone(t, { server: { firstHeadersTimeout: 1500 } });
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearInterval));
  await withPeers(
    t,
    side,
    async () => (await tlsPeer(side, (s) => timers.push(trickle(s, PREFACE, 1000)))).raw,
    8000,
    'HEADERS_TIMEOUT',
  );
});

test.serial('1 byte/s during the TLS handshake is cut at the handshake timeout; descriptors return to the baseline', async (t) => {
  const side = await startHbone(t, { server: { handshakeTimeout: 1500 } });
  // The start of a real ClientHello from the mesh client context, sent one byte per second.
  const hello = await new Promise<Buffer>((resolve) => {
    const srv = net.createServer((c) => c.once('data', (d: Buffer) => { resolve(d); c.destroy(); srv.close(); }));
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address() as net.AddressInfo;
      const c = tls.connect({ host: '127.0.0.1', port: p.port, secureContext: side.clientCert.secureContext, ALPNProtocols: ['h2'] });
      c.on('error', () => undefined);
    });
  });
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearInterval));
  await withPeers(
    t,
    side,
    async () => {
      const s = await halfOpenTcp(side);
      s.pause();
      timers.push(trickle(s, hello, 1000));
      return s;
    },
    8000,
    'HANDSHAKE_TIMEOUT',
  );
});
