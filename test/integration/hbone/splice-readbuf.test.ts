import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { dialTcp } from '../../../src/transport/dial';
import { splice, type SpliceOutcome } from '../../../src/transport/splice';
import { readBuffersOf } from '../../../src/transport/splice-readbuf';
import { makeSocketAddr, type SocketAddr } from '../../../src/util/socket-addr';
import { eventually, readAll, startApp, startHbone } from './fixture';

/**
 * splice() with legs that read into reused buffers (PooledReadSocket, what dialTcp and the
 * adopted descriptors make): the bytes arrive intact and in order, FIN and RST carry as
 * on any socket, backpressure holds, and bulk reads bypass the readable stream.
 */

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The proxy dials both ends (so both legs are reused-buffer sockets) and splices them. */
async function dialBoth(t: ExecutionContext, client: SocketAddr, app: SocketAddr, delaySpliceMs = 0) {
  const a = await dialTcp(client, { timeoutMs: 2000 });
  const b = await dialTcp(app, { timeoutMs: 2000 });
  t.truthy(readBuffersOf(a), 'dialTcp makes a reused-buffer socket');
  if (delaySpliceMs > 0) await new Promise((r) => setTimeout(r, delaySpliceMs));
  const outcome = splice(a, b);
  // After the splice took the sockets: a 'data' listener before it would consume what they read.
  let dataEvents = 0;
  a.on('data', () => dataEvents++);
  b.on('data', () => dataEvents++);
  return { a, b, outcome, dataEvents: () => dataEvents };
}

/** A listener whose first accepted socket is handed out (the "client" side of the proxy). */
async function peer(t: ExecutionContext): Promise<{ addr: SocketAddr; socket: Promise<net.Socket> }> {
  let got!: (s: net.Socket) => void;
  const socket = new Promise<net.Socket>((r) => (got = r));
  const addr = await startApp(t, (s) => got(s));
  return { addr, socket };
}

test('TCP↔TCP, both legs reused-buffer sockets: 32 MiB each way at once, FIN both ways, bytes from counters, bulk not through the readable stream', async (t) => {
  const up = randomBytes(32 * 1024 * 1024);
  const down = randomBytes(32 * 1024 * 1024);
  const cl = await peer(t);
  let appGot!: Promise<Buffer>;
  const app = await startApp(t, (s) => {
    appGot = readAll(s);
    s.end(down);
  });
  const { outcome, dataEvents } = await dialBoth(t, cl.addr, app);
  const c = await cl.socket;
  const clientGot = readAll(c);
  c.end(up);
  t.is(sha(await clientGot), sha(down));
  t.is(sha(await appGot), sha(up));
  const o: SpliceOutcome = await outcome;
  t.deepEqual(o, { reason: null, aToB: up.length, bToA: down.length, discarded: 0 });
  // 64 MiB moved; a read through the readable stream would be a 'data' event each.
  t.true(dataEvents() < 16, `${dataEvents()} 'data' events`);
});

test('bytes read before the splice starts come first, then the rest in order', async (t) => {
  const first = randomBytes(100_000);
  const rest = randomBytes(3 * 1024 * 1024);
  const cl = await peer(t);
  let appGot!: Promise<Buffer>;
  const app = await startApp(t, (s) => {
    appGot = readAll(s);
    s.on('end', () => s.end());
  });
  const c0 = cl.socket.then((c) => {
    c.write(first);
    return c;
  });
  const { outcome } = await dialBoth(t, cl.addr, app, 150);
  const c = await c0;
  c.end(rest);
  c.resume();
  t.is(sha(await appGot), sha(Buffer.concat([first, rest])));
  t.is((await outcome).aToB, first.length + rest.length);
});

test('backpressure: a destination that does not read stops the reads; what the proxy holds stays bounded; then all bytes arrive', async (t) => {
  const total = 48 * 1024 * 1024;
  const data = randomBytes(total);
  const cl = await peer(t);
  let appSock!: net.Socket;
  const app = await startApp(t, (s) => {
    appSock = s;
    s.pause();
  });
  const { a, b, outcome } = await dialBoth(t, cl.addr, app);
  const c = await cl.socket;
  c.end(data);
  c.resume();
  await eventually(() => appSock !== undefined);
  // Let the kernel buffers fill, then look at what the proxy holds.
  let held = 0;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 25));
    held = Math.max(held, b.writableLength);
  }
  t.true(a.bytesRead < total, 'the source is not read to the end while the destination is stuck');
  // The socket's high-water mark plus the chunk that crossed it (at most one 64 KiB read).
  t.true(held <= b.writableHighWaterMark + 64 * 1024, `proxy held ${held} bytes`);
  const got = readAll(appSock);
  appSock.on('end', () => appSock.end());
  appSock.resume();
  t.is(sha(await got), sha(data));
  t.is((await outcome).reason, null);
});

test('RST from the app while bulk is flowing: the client sees ECONNRESET, outcome RESET', async (t) => {
  const cl = await peer(t);
  let appSock!: net.Socket;
  let appRead = 0;
  const app = await startApp(t, (s) => {
    appSock = s;
    s.on('data', (d: Buffer) => (appRead += d.length));
  });
  const { outcome } = await dialBoth(t, cl.addr, app);
  const c = await cl.socket;
  c.on('error', () => undefined);
  const chunk = randomBytes(256 * 1024);
  let stop = false;
  const pump = (): void => {
    while (!stop && c.write(chunk));
    if (!stop) c.once('drain', pump);
  };
  pump();
  await eventually(() => appRead > 4 * 1024 * 1024);
  // The client stops writing (so it can only learn of the reset by reading), and the app
  // sends one byte back, so the RST finds nothing unread in the proxy's receive queue.
  stop = true;
  appSock.write('x');
  await new Promise((r) => c.once('data', r));
  appSock.resetAndDestroy();
  const code = await new Promise((r) => {
    c.once('error', (e) => r((e as NodeJS.ErrnoException).code));
    c.once('end', () => r('EOF'));
  });
  t.is(code, 'ECONNRESET');
  t.is((await outcome).reason, 'RESET');
});

test('TCP → HBONE stream: the app-facing leg reads into reused buffers; 24 MiB each way with FIN ↔ END_STREAM', async (t) => {
  const up = randomBytes(24 * 1024 * 1024);
  const down = randomBytes(24 * 1024 * 1024);
  let appGot!: Promise<Buffer>;
  const app = await startApp(t, (s) => {
    appGot = readAll(s);
    s.end(down);
  });
  const outcomes: SpliceOutcome[] = [];
  const side = await startHbone(t, {
    onConnect: (req) => {
      void dialTcp(req.authority, { timeoutMs: 2000 }).then(
        (sock) => {
          t.truthy(readBuffersOf(sock));
          void splice(req.accept(), sock).then((o) => outcomes.push(o));
        },
        () => req.reject(503, 'CONNECT'),
      );
    },
  });
  const hs = await side.pool.connect(side.target(makeSocketAddr(app.ip, app.port)));
  const got = readAll(hs.stream);
  hs.stream.end(up);
  t.is(sha(await got), sha(down));
  t.is(sha(await appGot), sha(up));
  await eventually(() => outcomes.length === 1);
  t.deepEqual(outcomes[0], { reason: null, aToB: up.length, bToA: down.length, discarded: 0 });
});
