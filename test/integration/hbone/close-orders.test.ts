import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import type { SocketAddr } from '../../../src/util/socket-addr';
import { eventually, readAll, startApp, startHbone, startOutbound } from './fixture';

/** app client → outbound listener → pool → HBONE → HboneServer → app server, all real sockets. */
async function hop(t: ExecutionContext, onApp: (s: net.Socket) => void) {
  const app = await startApp(t, onApp);
  const side = await startHbone(t);
  const out = await startOutbound(t, side, side.target(app));
  return { side, out, app };
}

function dial(addr: SocketAddr): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: addr.ip, port: addr.port, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test('half-close, client FIN first: the server keeps sending after it and the client reads it all (T3)', async (t) => {
  const { out, side } = await hop(t, (s) => {
    const got: Buffer[] = [];
    s.on('data', (c) => got.push(c));
    s.on('end', () => {
      // Client's FIN arrived; answer afterwards, in two writes, then FIN.
      s.write(`got ${Buffer.concat(got).toString()};`);
      setTimeout(() => s.end('and more after your FIN'), 50);
    });
  });
  const c = await dial(out.addr);
  c.end('request');
  const reply = await readAll(c);
  t.is(reply.toString(), 'got request;and more after your FIN');
  await eventually(() => out.outcomes.length === 1 && side.inboundOutcomes.length === 1, 3000, 'both splices done');
  t.is(out.outcomes[0]?.reason, null);
  t.is(out.outcomes[0]?.aToB, 7);
  t.is(out.outcomes[0]?.bToA, reply.length);
  t.is(side.inboundOutcomes[0]?.reason, null);
});

test('half-close, server FIN first: the client keeps sending after it and the server reads it (T3)', async (t) => {
  let serverGot = '';
  const { out } = await hop(t, (s) => {
    s.end('server done first');
    s.on('data', (c) => (serverGot += c.toString()));
    s.on('end', () => undefined);
  });
  const c = await dial(out.addr);
  const reply = await readAll(c); // EOF from the server while our write side is still open
  t.is(reply.toString(), 'server done first');
  c.write('late ');
  c.end('client data');
  await eventually(() => serverGot === 'late client data', 3000, 'server reads the late client bytes');
  await eventually(() => out.outcomes.length === 1, 3000, 'outbound splice done');
  t.is(out.outcomes[0]?.reason, null);
});

test('server RST mid-stream reaches the client as ECONNRESET, not a clean EOF (T2)', async (t) => {
  const { out, side } = await hop(t, (s) => {
    s.write('partial');
    setTimeout(() => s.resetAndDestroy(), 50);
  });
  const c = await dial(out.addr);
  const got: Buffer[] = [];
  c.on('data', (d) => got.push(d));
  const outcome = await new Promise<string>((resolve) => {
    c.once('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? 'error'));
    c.once('end', () => resolve('EOF'));
  });
  t.is(outcome, 'ECONNRESET');
  t.is(Buffer.concat(got).toString(), 'partial');
  await eventually(() => out.outcomes.length === 1 && side.inboundOutcomes.length === 1, 3000, 'splices done');
  t.is(side.inboundOutcomes[0]?.reason, 'RESET');
  t.is(out.outcomes[0]?.reason, 'RESET');
});

test('client RST mid-stream reaches the server as ECONNRESET (T2, reverse)', async (t) => {
  let serverSaw = '';
  const { out } = await hop(t, (s) => {
    s.on('error', (e) => (serverSaw = (e as NodeJS.ErrnoException).code ?? 'error'));
    s.on('end', () => (serverSaw ||= 'EOF'));
    s.write('hi');
  });
  const c = await dial(out.addr);
  await new Promise((r) => c.once('data', r));
  c.resetAndDestroy();
  await eventually(() => serverSaw !== '', 3000, 'server sees the reset');
  t.is(serverSaw, 'ECONNRESET');
});

test('server closes gracefully while the client has not read yet: the client gets every byte then EOF, not RST (T4)', async (t) => {
  const payload = randomBytes(3 * 1024 * 1024);
  const { out } = await hop(t, (s) => {
    s.end(payload);
  });
  const c = await dial(out.addr);
  c.pause();
  await new Promise((r) => setTimeout(r, 300)); // server already closed; data waits in buffers
  c.resume();
  const got = await readAll(c);
  t.is(got.length, payload.length);
  t.true(got.equals(payload));
  c.end();
  await eventually(() => out.outcomes.length === 1, 3000, 'splice done');
  t.is(out.outcomes[0]?.reason, null);
});

test('zero-byte connection: connect then close is clean on both sides (T13)', async (t) => {
  const { out, side } = await hop(t, (s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const c = await dial(out.addr);
  c.end();
  t.is((await readAll(c)).length, 0);
  await eventually(() => out.outcomes.length === 1 && side.inboundOutcomes.length === 1, 3000, 'splices done');
  t.deepEqual(out.outcomes[0], { reason: null, aToB: 0, bToA: 0 });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

test('64 MiB each way through one HBONE hop, byte for byte (hash), with throughput logged', async (t) => {
  const size = 64 * 1024 * 1024;
  const up = randomBytes(size);
  const down = randomBytes(size);
  let serverHash = '';
  const { out, side } = await hop(t, (s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    s.on('end', () => {
      serverHash = h.digest('hex');
      t.is(n, size);
    });
    s.end(down);
  });
  const c = await dial(out.addr);
  const start = process.hrtime.bigint();
  const h = createHash('sha256');
  let n = 0;
  const done = new Promise<void>((resolve, reject) => {
    c.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    c.on('end', resolve);
    c.on('error', reject);
  });
  c.end(up);
  await done;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await eventually(() => serverHash !== '', 10_000, 'server hash');
  t.is(n, size);
  t.is(h.digest('hex'), sha(down));
  t.is(serverHash, sha(up));
  t.log(`128 MiB total (64 MiB each way, concurrently) in ${secs.toFixed(2)}s = ${((2 * size) / 1048576 / secs).toFixed(0)} MiB/s aggregate`);
  await eventually(() => out.outcomes.length === 1 && side.inboundOutcomes.length === 1, 5000, 'splices done');
  t.is(out.outcomes[0]?.aToB, size);
  t.is(out.outcomes[0]?.bToA, size);
  t.is(side.inboundOutcomes[0]?.aToB, size);
  t.is(side.inboundOutcomes[0]?.bToA, size);
});

test('slow reader: backpressure pauses the source, buffers stay bounded (T9)', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  let serverWrote = 0;
  let serverStalled = false;
  let serverSock: net.Socket | undefined;
  const { out } = await hop(t, (s) => {
    serverSock = s;
    // Write as fast as the proxy accepts; stop when write() says the buffers are full.
    const pump = (): void => {
      for (let i = 0; i < 2048; i++) {
        serverWrote += chunk.length;
        if (!s.write(chunk)) {
          serverStalled = true;
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const c = await dial(out.addr);
  c.pause(); // never read for now
  await eventually(() => serverStalled, 5000, 'server writes stall');
  // Wait until the path is full: the count stops moving for 500 ms (bounded number of polls).
  let wroteAtStall = -1;
  for (let i = 0; i < 30 && wroteAtStall !== serverWrote; i++) {
    wroteAtStall = serverWrote;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.is(serverWrote, wroteAtStall, 'no progress while the client is not reading');
  // Bounded: 4 MiB stream window + socket buffers, far below the 128 MiB the server offered.
  t.true(wroteAtStall < 48 * 1024 * 1024, `server could push ${wroteAtStall} bytes into a stalled path`);
  t.log(`bytes accepted from the server while the client reads nothing: ${(wroteAtStall / 1048576).toFixed(1)} MiB`);
  // Now read: the flow resumes.
  let read = 0;
  c.on('data', (d: Buffer) => (read += d.length));
  c.resume();
  await eventually(() => read > wroteAtStall, 10_000, 'flow resumes after the reader catches up');
  serverSock?.destroy();
  c.destroy();
  t.pass();
});
