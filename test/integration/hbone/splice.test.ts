import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { ProxyError } from '../../../src/errors';
import { splice, type SpliceOutcome } from '../../../src/transport/splice';
import { closeServer, listen, readAll } from './fixture';

/** TCP↔TCP through splice(): client → proxy → app, all loopback sockets. */
async function tcpProxy(t: ExecutionContext, onApp: (s: net.Socket) => void, opts: Parameters<typeof splice>[2] = {}) {
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    onApp(s);
  });
  const appAddr = await listen(app);
  const outcomes: SpliceOutcome[] = [];
  const proxy = net.createServer({ allowHalfOpen: true }, (c) => {
    const up = net.connect({ host: appAddr.ip, port: appAddr.port, allowHalfOpen: true });
    const early = (): void => void c.resetAndDestroy();
    up.once('error', early);
    up.once('connect', () => {
      up.removeListener('error', early);
      void splice(c, up, opts).then((o) => outcomes.push(o));
    });
  });
  const proxyAddr = await listen(proxy);
  t.teardown(async () => {
    await closeServer(proxy);
    await closeServer(app);
  });
  const c = net.connect({ host: proxyAddr.ip, port: proxyAddr.port, allowHalfOpen: true });
  c.on('error', () => undefined);
  await new Promise((r) => c.once('connect', r));
  return { c, outcomes };
}

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  if (!pred()) throw new Error('timed out');
}

test('TCP↔TCP: half-close both ways, bytes counted from socket counters', async (t) => {
  const { c, outcomes } = await tcpProxy(t, (s) => {
    let n = 0;
    s.on('data', (d) => (n += d.length));
    s.on('end', () => s.end(`read ${n}`));
  });
  c.end(Buffer.alloc(100_000, 1));
  t.is((await readAll(c)).toString(), 'read 100000');
  await until(() => outcomes.length === 1);
  t.deepEqual(outcomes[0], { reason: null, aToB: 100_000, bToA: 11, discarded: 0 });
});

test('TCP↔TCP: app RST → client ECONNRESET, outcome RESET', async (t) => {
  // The app resets only once its byte reached the client: an RST that finds unread bytes in
  // the proxy's receive queue reads there as EOF (Linux), which would test the kernel instead.
  const app: net.Socket[] = [];
  const { c, outcomes } = await tcpProxy(t, (s) => {
    app.push(s);
    s.write('x');
  });
  c.once('data', () => app[0]?.resetAndDestroy());
  const code = await new Promise((r) => {
    c.once('error', (e) => r((e as NodeJS.ErrnoException).code));
    c.once('end', () => r('EOF'));
  });
  t.is(code, 'ECONNRESET');
  await until(() => outcomes.length === 1);
  t.is(outcomes[0]?.reason, 'RESET');
});

test('idle timeout closes both sides with IDLE_TIMEOUT; traffic keeps it open', async (t) => {
  const { c, outcomes } = await tcpProxy(t, (s) => s.pipe(s), { idleTimeout: 300 });
  for (let i = 0; i < 4; i++) {
    c.write('ping');
    await new Promise((r) => c.once('data', r));
    await new Promise((r) => setTimeout(r, 150));
  }
  t.is(outcomes.length, 0, 'still open after 600ms of regular traffic');
  await until(() => outcomes.length === 1, 2000);
  t.is(outcomes[0]?.reason, 'IDLE_TIMEOUT');
  t.is(outcomes[0]?.aToB, 16);
});

test('abort signal ends the splice with the ProxyError reason (drain / late deny)', async (t) => {
  const ac = new AbortController();
  const { c, outcomes } = await tcpProxy(t, (s) => s.pipe(s), { signal: ac.signal });
  c.write('x');
  await new Promise((r) => c.once('data', r));
  ac.abort(new ProxyError('DENY_LATE', 'policy changed'));
  await until(() => outcomes.length === 1);
  t.is(outcomes[0]?.reason, 'DENY_LATE');
});
