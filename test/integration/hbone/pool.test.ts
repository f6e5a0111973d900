import test from 'ava';
import * as http2 from 'node:http2';
import { ProxyError } from '../../../src/errors';
import { ManualClock } from '../../../src/util/clock';
import { echo, eventually, readAll, startApp, startHbone, SERVER_ID } from './fixture';
import { loadCapture } from '../../../src/native/capture';

const capture = loadCapture();
/** An unconnected TCP descriptor with no options (the addon is built by `npm ci`). */
function createPlainSocket(family: 4 | 6): number {
  if (!capture.available) throw new Error(capture.reason);
  return capture.addon.createDialSocket(family, 0, null, false);
}

test('round trip: pool → HboneServer → echo app, with verified peer identity and request headers', async (t) => {
  let seenHeaders: Record<string, unknown> = {};
  let seenPeer = '';
  const app = await startApp(t, echo);
  const side = await startHbone(t, {
    onConnect: (req) => {
      seenHeaders = { ...req.headers };
      seenPeer = req.peerIdentity.toString();
      const net = require('node:net') as typeof import('node:net');
      const up = net.connect({ host: req.authority.ip, port: req.authority.port, allowHalfOpen: true });
      up.once('connect', () => {
        const s = req.accept({ 'x-test': 'yes' });
        s.pipe(up).pipe(s);
      });
    },
  });
  const hs = await side.pool.connect(side.target(app));
  t.is(hs.peerIdentity.toString(), SERVER_ID);
  t.is(hs.responseHeaders['x-test'], 'yes');
  hs.stream.end('hello hbone');
  const got = await readAll(hs.stream);
  t.is(got.toString(), 'hello hbone');
  t.is(seenPeer, 'spiffe://cluster.local/ns/default/sa/client');
  t.is(seenHeaders[':method'], 'CONNECT');
  t.is(seenHeaders[':authority'], `127.0.0.1:${app.port}`);
  t.is(seenHeaders[':path'], undefined);
  t.is(seenHeaders[':scheme'], undefined);
  t.is(seenHeaders['traceparent'], '00-0123456789abcdef0123456789abcdef-0123456789abcdef-00');
});

test('pool reuse: 5 sequential connects share one session', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  for (let i = 0; i < 5; i++) {
    const hs = await side.pool.connect(side.target(app));
    hs.stream.end(`msg${i}`);
    t.is((await readAll(hs.stream)).toString(), `msg${i}`);
  }
  const st = side.pool.stats();
  t.is(st.dials, 1);
  t.is(st.sessions, 1);
});

test('stream limit: cap 2 and 3 concurrent streams → a second session for the same key', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t, { pool: { maxStreamsPerConnection: 2 } });
  const streams = [];
  for (let i = 0; i < 3; i++) streams.push(await side.pool.connect(side.target(app)));
  t.is(side.pool.stats().sessions, 2);
  t.is(side.pool.stats().dials, 2);
  t.is(side.pool.stats().activeStreams, 3);
  const dump = side.pool.dump() as { keys: { sessions: { activeStreams: number; maxStreams: number }[] }[] };
  t.deepEqual(dump.keys[0]?.sessions.map((s) => [s.activeStreams, s.maxStreams]), [[2, 2], [1, 2]]);
  for (const s of streams) {
    s.stream.end('x');
    await readAll(s.stream);
  }
  await eventually(() => side.pool.stats().activeStreams === 0, 3000, 'streams released');
});

test('peer SETTINGS_MAX_CONCURRENT_STREAMS caps the per-session limit below the pool limit', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t, { server: { maxConcurrentStreams: 1 } });
  const a = await side.pool.connect(side.target(app));
  const b = await side.pool.connect(side.target(app));
  t.is(side.pool.stats().sessions, 2);
  for (const s of [a, b]) {
    s.stream.end('y');
    await readAll(s.stream);
  }
});

test('no stampede: 20 concurrent first connects make exactly one dial', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const all = await Promise.all(Array.from({ length: 20 }, () => side.pool.connect(side.target(app))));
  t.is(side.pool.stats().dials, 1);
  t.is(side.pool.stats().sessions, 1);
  t.is(side.certs.fetches, 1);
  await Promise.all(
    all.map(async (s, i) => {
      s.stream.end(`c${i}`);
      t.is((await readAll(s.stream)).toString(), `c${i}`);
    }),
  );
});

/**
 * The server's certificate lookup runs once per TLS handshake: it counts handshakes in
 * progress at once, holding each until `expect` are in progress together (or 3 s passed,
 * so a pool that dials one at a time still completes, and shows a peak of 1).
 */
function handshakeGate(expect: number): { peak: () => number; hold: <C>(c: C) => Promise<C> } {
  let now = 0;
  let peak = 0;
  const waiting: (() => void)[] = [];
  return {
    peak: () => peak,
    hold: async <C>(cert: C): Promise<C> => {
      now++;
      peak = Math.max(peak, now);
      if (now >= expect) waiting.splice(0).forEach((w) => w());
      else
        await new Promise<void>((r) => {
          waiting.push(r);
          setTimeout(r, 3000);
        });
      now--;
      return cert;
    },
  };
}

test('a stream cap dials in parallel: 6 concurrent connects, cap 2 → 3 dials, all 3 handshakes in progress at once', async (t) => {
  const app = await startApp(t, echo);
  const gate = handshakeGate(3);
  const side = await startHbone(t, { pool: { maxStreamsPerConnection: 2 }, wrapServerCert: gate.hold });
  const all = await Promise.all(Array.from({ length: 6 }, () => side.pool.connect(side.target(app))));
  t.is(side.pool.stats().dials, 3);
  t.is(side.pool.stats().sessions, 3);
  t.is(gate.peak(), 3, 'each dial covers two connects; the three were handshaking together');
  for (const s of all) s.stream.destroy();
});

test('no stampede under a stream cap: 4 concurrent connects, cap 4 → one dial, one handshake', async (t) => {
  const app = await startApp(t, echo);
  const gate = handshakeGate(2);
  const side = await startHbone(t, { pool: { maxStreamsPerConnection: 4 }, wrapServerCert: gate.hold });
  const all = await Promise.all(Array.from({ length: 4 }, () => side.pool.connect(side.target(app))));
  t.is(side.pool.stats().dials, 1);
  t.is(gate.peak(), 1);
  for (const s of all) s.stream.destroy();
});

test('peerUid change for the same next hop never reuses the old session', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const a = await side.pool.connect(side.target(app, { peerUid: 'uid-old' }));
  a.stream.end('a');
  await readAll(a.stream);
  const b = await side.pool.connect(side.target(app, { peerUid: 'uid-new' }));
  b.stream.end('b');
  await readAll(b.stream);
  t.is(side.pool.stats().dials, 2);
  side.pool.evictPeer('uid-old');
  await eventually(() => side.pool.stats().sessions === 1, 3000, 'old uid session closed');
  const c = await side.pool.connect(side.target(app, { peerUid: 'uid-new' }));
  c.stream.destroy();
  t.is(side.pool.stats().dials, 2);
});

test('GOAWAY from the server evicts the session; in-flight streams finish; next connect dials anew', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const inflight = await side.pool.connect(side.target(app));
  const closing = side.server.close();
  await eventually(() => (side.pool.dump() as { keys: unknown[] }).keys.length === 0, 3000, 'eviction on GOAWAY');
  inflight.stream.end('still flowing');
  t.is((await readAll(inflight.stream)).toString(), 'still flowing');
  await closing;
  t.is(side.pool.stats().dials, 1);
});

test('a real GOAWAY(NO_ERROR) frame on a live session evicts it; the next connect dials anew', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const first = await side.pool.connect(side.target(app));
  const conns = (side.server as unknown as { connections: Set<{ session: http2.ServerHttp2Session }> }).connections;
  t.is(conns.size, 1);
  for (const c of conns) c.session.goaway(http2.constants.NGHTTP2_NO_ERROR);
  await eventually(() => (side.pool.dump() as { keys: unknown[] }).keys.length === 0, 3000, 'eviction on GOAWAY');
  const second = await side.pool.connect(side.target(app));
  t.is(side.pool.stats().dials, 2);
  for (const s of [first, second]) {
    s.stream.end('z');
    t.is((await readAll(s.stream)).toString(), 'z');
  }
});

test('idle release after POOL_UNUSED_RELEASE_TIMEOUT with a manual clock', async (t) => {
  const clock = new ManualClock();
  const app = await startApp(t, echo);
  const side = await startHbone(t, { pool: { clock, unusedReleaseTimeout: 60_000, keepalive: { interval: 0 } } });
  const hs = await side.pool.connect(side.target(app));
  hs.stream.end('q');
  await readAll(hs.stream);
  clock.advance(30_000);
  const again = await side.pool.connect(side.target(app));
  again.stream.end('r');
  await readAll(again.stream);
  t.is(side.pool.stats().dials, 1);
  clock.advance(59_000);
  t.is(side.pool.stats().sessions, 1, 'checkout at t=30s restarts the idle period');
  clock.advance(2_000);
  await eventually(() => side.pool.stats().sessions === 0, 3000, 'idle session closed');
  t.deepEqual((side.pool.dump() as { keys: unknown[] }).keys, []);
});

test('non-200 from the handler → HBONE_STATUS with the status at the client', async (t) => {
  const side = await startHbone(t, { onConnect: (req) => req.reject(401, 'DENY') });
  const err = await t.throwsAsync(side.pool.connect(side.target('127.0.0.1:9')), { instanceOf: ProxyError });
  t.is(err?.reason, 'HBONE_STATUS');
  t.is(err?.details['status'], 401);
  t.regex(err?.message ?? '', /HTTP 401/);
  await eventually(() => side.pool.stats().activeStreams === 0, 2000, 'reservation released');
});

test('upstream connect refused → 503 → HBONE_STATUS 503', async (t) => {
  const side = await startHbone(t);
  const err = await t.throwsAsync(side.pool.connect(side.target('127.0.0.1:1')), { instanceOf: ProxyError });
  t.is(err?.reason, 'HBONE_STATUS');
  t.is(err?.details['status'], 503);
});

test('stream reset before the response → HBONE_RESET', async (t) => {
  const side = await startHbone(t, {
    onConnect: (req) => {
      (req as unknown as { stream: http2.ServerHttp2Stream }).stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    },
  });
  const err = await t.throwsAsync(side.pool.connect(side.target('127.0.0.1:9')), { instanceOf: ProxyError });
  t.is(err?.reason, 'HBONE_RESET');
});

test('close(): GOAWAY to every session, resolves when streams finish; later connects fail with DRAINED', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t);
  const hs = await side.pool.connect(side.target(app));
  let closed = false;
  const closing = side.pool.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  t.false(closed, 'waits for the open stream');
  hs.stream.end('bye');
  t.is((await readAll(hs.stream)).toString(), 'bye');
  await closing;
  t.true(closed);
  const err = await t.throwsAsync(side.pool.connect(side.target(app)), { instanceOf: ProxyError });
  t.is(err?.reason, 'DRAINED');
});

test('the dial descriptor is created once per dial, with the mark, by the socket options hook', async (t) => {
  const app = await startApp(t, echo);
  const calls: { family: number; mark: number; fd: number }[] = [];
  const side = await startHbone(t, {
    pool: {
      socket: {
        noDelay: true,
        keepalive: true,
        keepaliveTime: 60_000,
        mark: 0x539,
        createSocket: (family, spec) => {
          const fd = createPlainSocket(family);
          calls.push({ family, mark: spec.mark, fd });
          return fd;
        },
      },
    },
  });
  const hs = await side.pool.connect(side.target(app));
  hs.stream.end('m');
  t.is((await readAll(hs.stream)).toString(), 'm');
  t.is(calls.length, 1);
  t.deepEqual({ family: calls[0]!.family, mark: calls[0]!.mark }, { family: 4, mark: 0x539 });
});

test('a failing SO_MARK hook is reported, the dial still works', async (t) => {
  const app = await startApp(t, echo);
  const side = await startHbone(t, {
    pool: {
      socket: {
        noDelay: true,
        keepalive: false,
        keepaliveTime: 0,
        mark: 1,
        createSocket: (family, spec) => {
          if (spec.mark !== 0) throw Object.assign(new Error('setsockopt(SO_MARK): EPERM: need CAP_NET_ADMIN'), { code: 'EPERM', syscall: 'setsockopt(SO_MARK)' });
          return createPlainSocket(family);
        },
      },
    },
  });
  const hs = await side.pool.connect(side.target(app));
  hs.stream.end('n');
  t.is((await readAll(hs.stream)).toString(), 'n');
  t.is(side.logs.find((l) => String(l['err']).includes('CAP_NET_ADMIN')).length, 1);
});

test('InboundConnect.aborted resolves when the client gives up before accept; accept() then throws HBONE_RESET', async (t) => {
  let req: import('../../../src/transport/hbone/types').InboundConnect | undefined;
  const side = await startHbone(t, { onConnect: (r) => (req = r) });
  const pending = side.pool.connect(side.target('127.0.0.1:9'));
  pending.catch(() => undefined);
  await eventually(() => req !== undefined, 3000, 'handler called');
  side.pool.destroy(); // the client side vanishes while the node proxy is still "dialing"
  await req!.aborted;
  const err = t.throws(() => req!.accept(), { instanceOf: ProxyError });
  t.is(err?.reason, 'HBONE_RESET');
  await eventually(() => side.server.stats().connections === 0, 3000, 'server session gone after the client vanished');
});
