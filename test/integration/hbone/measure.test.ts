import test from 'ava';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { HboneStream } from '../../../src/transport/hbone/types';
import { eventually, startApp, startHbone } from './fixture';

/**
 * Measurements on loopback (numbers are logged, not asserted beyond sanity: the machine
 * is shared). Kept short so parallel test runs are not starved.
 */

test.serial('measure: memory per idle HBONE connection and per idle stream', async (t) => {
  const app = await startApp(t, (s) => s.resume());
  const side = await startHbone(t);
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const mem = async (): Promise<number> => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  const conns = 50;
  const before = await mem();
  const held: HboneStream[] = [];
  for (let i = 0; i < conns; i++) held.push(await side.pool.connect(side.target(app, { peerUid: `m-${i}` })));
  const afterConns = await mem();
  const streams = 200;
  for (let i = 0; i < streams; i++) held.push(await side.pool.connect(side.target(app, { peerUid: 'm-0' })));
  const afterStreams = await mem();
  t.is(side.pool.stats().activeStreams, conns + streams);
  t.log(
    `≈${((afterConns - before) / conns / 1024).toFixed(0)} KiB per connection (client + server side + 1 stream + upstream socket), ` +
      `≈${((afterStreams - afterConns) / streams / 1024).toFixed(1)} KiB per extra stream on a pooled connection ` +
      '(JS heap + Buffer memory after gc; OpenSSL/nghttp2 native allocations are not included)',
  );
  for (const h of held) h.stream.destroy();
  await eventually(() => side.pool.stats().activeStreams === 0, 5000, 'streams released');
});

test.serial('measure: new HBONE connections per second (TCP + TLS 1.3 + h2 SETTINGS + first CONNECT)', async (t) => {
  const app = await startApp(t, (s) => s.resume());
  const side = await startHbone(t);
  const n = 60;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const hs = await side.pool.connect(side.target(app, { peerUid: `uid-${i}` })); // new key → new dial
    hs.stream.destroy();
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  t.is(side.pool.stats().dials, n);
  t.log(`${n} sequential new connections in ${secs.toFixed(2)}s = ${(n / secs).toFixed(0)}/s (client and server in one process)`);
  const t1 = process.hrtime.bigint();
  const m = 500;
  for (let i = 0; i < m; i++) {
    const hs = await side.pool.connect(side.target(app, { peerUid: 'uid-0' }));
    hs.stream.destroy();
  }
  const s2 = Number(process.hrtime.bigint() - t1) / 1e9;
  t.log(`${m} sequential CONNECT streams on a pooled connection in ${s2.toFixed(2)}s = ${(m / s2).toFixed(0)}/s`);
});

test.serial('measure: one-way 64 MiB upload through one hop (MiB/s)', async (t) => {
  const size = 64 * 1024 * 1024;
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const app = await startApp(t, (s) => {
    s.on('data', (d: Buffer) => (got += d.length));
    s.on('end', () => {
      s.end();
      done();
    });
  });
  const side = await startHbone(t);
  const hs = await side.pool.connect(side.target(app));
  const chunk = randomBytes(1024 * 1024);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 64; i++) if (!hs.stream.write(chunk)) await new Promise((r) => hs.stream.once('drain', r));
  hs.stream.end();
  hs.stream.resume();
  await finished;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  t.is(got, size);
  t.log(`64 MiB one way in ${secs.toFixed(2)}s = ${(size / 1048576 / secs).toFixed(0)} MiB/s (client pool + server + upstream in one process)`);
});
