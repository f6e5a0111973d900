import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { waitUntil, type TestNode } from '../../helpers/node-harness';
import { socksConnect } from '../../helpers/socks-client';
import { endOf, startTwoNodes } from '../../helpers/two-nodes';

/**
 * How connections end, through the product's own path: client → node-a's outbound (SOCKS5)
 * → pooled HBONE → node-b's inbound handler → app, with real NodeApps. Each check expects
 * exactly one outcome (a FIN is 'EOF', an RST is 'ECONNRESET'). Apps that talk first wait
 * for the client's first byte, so nothing arrives before the test reads the SOCKS socket.
 */

async function hop(t: ExecutionContext, onApp: (s: Socket) => void) {
  const mesh = await startTwoNodes(t, {}, onApp);
  const dial = async (): Promise<Socket> => {
    const c = await socksConnect(mesh.a.listener('socks5'), { host: mesh.ip(20), port: 8080 }, mesh.ip(10));
    t.teardown(() => c.destroy());
    return c;
  };
  return { ...mesh, dial };
}

/** The one `connection complete` line of a node, once it is there. */
async function record(n: TestNode): Promise<Record<string, unknown>> {
  await waitUntil(() => n.access('connection complete').length === 1, 5000, () => `${n.name} recorded the connection`);
  return n.access('connection complete')[0]!;
}

function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

test('half-close, client FIN first: the server keeps sending after it and the client reads it all', async (t) => {
  const { dial, a, b } = await hop(t, (s) => {
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.on('end', () => {
      s.write(`got ${Buffer.concat(got).toString()};`);
      setTimeout(() => s.end('and more after your FIN'), 50);
    });
  });
  const c = await dial();
  c.end('request');
  const reply = await readAll(c);
  t.is(reply.toString(), 'got request;and more after your FIN');
  t.like(await record(a), { reason: undefined, bytes_sent: 7, bytes_recv: reply.length });
  t.like(await record(b), { reason: undefined, bytes_sent: reply.length, bytes_recv: 7 });
});

test('half-close, server FIN first: the client keeps sending after it and the server reads it', async (t) => {
  let serverGot = '';
  const { dial, a } = await hop(t, (s) => {
    s.once('data', () => {
      s.end('server done first');
      s.on('data', (c: Buffer) => (serverGot += c.toString()));
    });
  });
  const c = await dial();
  const reply = readAll(c);
  c.write('hi');
  t.is((await reply).toString(), 'server done first');
  c.write('late ');
  c.end('client data');
  await waitUntil(() => serverGot === 'late client data', 5000, () => 'server reads the late client bytes');
  t.like(await record(a), { reason: undefined, bytes_sent: 18, bytes_recv: 17 });
});

test('server RST mid-stream reaches the client as ECONNRESET, not a clean EOF', async (t) => {
  const reset: Array<() => void> = [];
  const { dial, a, b } = await hop(t, (s) => {
    s.once('data', () => s.write('partial'));
    reset.push(() => s.resetAndDestroy());
  });
  const c = await dial();
  const got: Buffer[] = [];
  c.on('data', (d: Buffer) => got.push(d));
  const end = endOf(c);
  c.write('go');
  await waitUntil(() => Buffer.concat(got).toString() === 'partial', 5000, () => 'partial data arrived');
  reset[0]!();
  t.is(await end, 'ECONNRESET');
  t.like(await record(b), { reason: 'RESET' });
  t.like(await record(a), { reason: 'RESET' });
});

test('client RST mid-stream reaches the server as ECONNRESET (reverse direction)', async (t) => {
  const appEnd: Promise<string>[] = [];
  const { dial, a, b } = await hop(t, (s) => {
    appEnd.push(endOf(s));
    s.once('data', () => s.write('hi'));
  });
  const c = await dial();
  const hi = new Promise((r) => c.once('data', r));
  c.write('go');
  await hi;
  c.resetAndDestroy();
  await waitUntil(() => appEnd.length === 1, 5000, () => 'app connected');
  t.is(await appEnd[0], 'ECONNRESET');
  t.like(await record(a), { reason: 'RESET' });
  t.like(await record(b), { reason: 'RESET' });
});

test('server closes gracefully while the client has not read yet: the client gets every byte then EOF, not RST', async (t) => {
  const payload = randomBytes(3 * 1024 * 1024);
  const { dial, a } = await hop(t, (s) => {
    s.once('data', () => s.end(payload));
  });
  const c = await dial();
  c.pause();
  c.write('go');
  await new Promise((r) => setTimeout(r, 300)); // the server already closed; data waits in buffers
  const got = await readAll(c.resume());
  t.true(got.equals(payload));
  c.end();
  t.like(await record(a), { reason: undefined, bytes_sent: 2, bytes_recv: payload.length });
});

test('zero-byte connection: connect then close is clean on both sides', async (t) => {
  const { dial, a, b } = await hop(t, (s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const c = await dial();
  c.end();
  t.is((await readAll(c)).length, 0);
  t.like(await record(a), { reason: undefined, bytes_sent: 0, bytes_recv: 0 });
  t.like(await record(b), { reason: undefined, bytes_sent: 0, bytes_recv: 0 });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

test('32 MiB each way through two node proxies, byte for byte (hash), with throughput logged', async (t) => {
  const size = 32 * 1024 * 1024;
  const up = randomBytes(size);
  const down = randomBytes(size);
  let serverHash = '';
  const { dial, a, b } = await hop(t, (s) => {
    const h = createHash('sha256');
    s.on('data', (c: Buffer) => h.update(c));
    s.on('end', () => (serverHash = h.digest('hex')));
    s.once('data', () => s.end(down));
  });
  const c = await dial();
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
  await waitUntil(() => serverHash !== '', 10_000, () => 'server hash');
  t.is(n, size);
  t.is(h.digest('hex'), sha(down));
  t.is(serverHash, sha(up));
  t.log(`64 MiB total (32 MiB each way, concurrently) in ${secs.toFixed(2)}s = ${((2 * size) / 1048576 / secs).toFixed(0)} MiB/s aggregate`);
  t.like(await record(a), { reason: undefined, bytes_sent: size, bytes_recv: size });
  t.like(await record(b), { reason: undefined, bytes_sent: size, bytes_recv: size });
});

test('slow reader: backpressure pauses the source, buffers stay bounded', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  let serverWrote = 0;
  let serverStalled = false;
  const { dial } = await hop(t, (s) => {
    s.resume();
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
    s.once('data', pump);
  });
  const c = await dial();
  c.pause();
  c.write('go');
  await waitUntil(() => serverStalled, 5000, () => 'server writes stall');
  let wroteAtStall = -1;
  for (let i = 0; i < 30 && wroteAtStall !== serverWrote; i++) {
    wroteAtStall = serverWrote;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.is(serverWrote, wroteAtStall, 'no progress while the client is not reading');
  // Bounded: stream window + socket buffers of both proxies, far below the 128 MiB offered.
  t.true(wroteAtStall < 48 * 1024 * 1024, `server could push ${wroteAtStall} bytes into a stalled path`);
  t.log(`bytes accepted from the server while the client reads nothing: ${(wroteAtStall / 1048576).toFixed(1)} MiB`);
  let read = 0;
  c.on('data', (d: Buffer) => (read += d.length));
  c.resume();
  await waitUntil(() => read > wroteAtStall, 10_000, () => 'flow resumes after the reader catches up');
  t.pass();
});
