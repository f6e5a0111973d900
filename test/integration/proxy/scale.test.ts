import test from 'ava';
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { spawnChildNode, type ChildNode } from '../../helpers/child-node';
import { waitUntil } from '../../helpers/node-harness';
import { fdCount as fds, rssKiB, settledFdCount as settled } from '../../helpers/proc';
import { sumSamples } from '../../helpers/prom-text';
import { socksConnect } from '../../helpers/socks-client';
import { startConfigOfTwo } from '../../helpers/two-nodes';

/**
 * N concurrent proxied connections through two node proxies (client → node-a SOCKS5 →
 * pooled HBONE → node-b → echo app), each proxy and the app in its own process so every
 * one stays under the descriptor limit: no connection may fail, memory per connection is
 * bounded (measured from each proxy's RSS), and every descriptor is released after close.
 */

const N = 10_000;
const CONCURRENCY = 200;

async function failures(n: ChildNode): Promise<number> {
  const m = await n.metrics();
  return sumSamples(m, 'ztunnel_ts_connection_failures_total') + sumSamples(m, 'istio_tcp_connections_failed_total');
}

test.serial(`${N} concurrent connections through two proxies: none fails, memory per connection bounded, every descriptor released`, async (t) => {
  const { ip, mesh } = await startConfigOfTwo(t);
  const appScript = `require('net').createServer({allowHalfOpen:true},(s)=>{s.on('error',()=>{});s.pipe(s);}).listen(8080,${JSON.stringify(ip(20))},()=>console.log('ready'))`;
  const app = spawn(process.execPath, ['-e', appScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => app.kill('SIGKILL'));
  await new Promise((r) => app.stdout!.once('data', r));
  const env = { LOG_LEVEL: 'info', POOL_UNUSED_RELEASE_TIMEOUT: '2s' };
  const a = await spawnChildNode(t, mesh, 'node-a', { ...env, SOCKS5_ADDR: `${ip(1)}:0` });
  const b = await spawnChildNode(t, mesh, 'node-b', env);
  const socks = a.listener('socks5');
  const base = { a: await settled(a.pid), b: await settled(b.pid) };
  const rss0 = { a: rssKiB(a.pid), b: rssKiB(b.pid) };

  const clients: Socket[] = [];
  t.teardown(() => clients.forEach((c) => c.destroy()));
  let failed = 0;
  let next = 0;
  const t0 = Date.now();
  const worker = async (): Promise<void> => {
    while (next < N) {
      next++;
      try {
        const c = await socksConnect(socks, { host: ip(20), port: 8080 }, ip(10), 30_000);
        c.on('error', () => undefined);
        clients.push(c);
        const echoed = new Promise<void>((resolve, reject) => {
          c.once('data', () => resolve());
          c.once('close', () => reject(new Error('closed before the echo')));
        });
        c.write('x');
        await echoed;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const openMs = Date.now() - t0;
  t.is(failed, 0, `${failed} of ${N} connections failed`);
  const held = { a: fds(a.pid), b: fds(b.pid) };
  const rss = { a: rssKiB(a.pid), b: rssKiB(b.pid) };
  const perConn = { a: ((rss.a - rss0.a) * 1024) / N, b: ((rss.b - rss0.b) * 1024) / N };
  t.log(`${N} connections open in ${(openMs / 1000).toFixed(1)} s (${Math.round(N / (openMs / 1000))}/s, ${CONCURRENCY} at a time)`);
  t.log(`node-a: fds ${base.a} → ${held.a}, RSS ${(rss0.a / 1024).toFixed(0)} → ${(rss.a / 1024).toFixed(0)} MiB = ${(perConn.a / 1024).toFixed(1)} KiB per connection`);
  t.log(`node-b: fds ${base.b} → ${held.b}, RSS ${(rss0.b / 1024).toFixed(0)} → ${(rss.b / 1024).toFixed(0)} MiB = ${(perConn.b / 1024).toFixed(1)} KiB per connection`);
  t.true(held.a >= base.a + N && held.b >= base.b + N, 'every connection is live on both proxies at once');
  // Bounded: the per-connection state (sockets, one HTTP/2 stream, splice) is a few KiB;
  // socket buffers live in the kernel. 64 KiB would mean buffers are copied per connection.
  t.true(perConn.a < 64 * 1024, `node-a grew ${(perConn.a / 1024).toFixed(1)} KiB per connection`);
  t.true(perConn.b < 64 * 1024, `node-b grew ${(perConn.b / 1024).toFixed(1)} KiB per connection`);

  // Close every client cleanly; the echo answers each FIN with its own.
  const ends = clients.map((c) => new Promise<void>((resolve) => {
    c.once('end', () => resolve());
    c.once('close', () => resolve());
    c.resume();
  }));
  clients.forEach((c) => c.end());
  await Promise.all(ends);
  await waitUntil(() => fds(a.pid) <= base.a && fds(b.pid) <= base.b, 30_000, () => `descriptors back to the baseline: node-a ${fds(a.pid)}/${base.a}, node-b ${fds(b.pid)}/${base.b}`);
  t.log(`after close: node-a fds ${fds(a.pid)} (baseline ${base.a}), node-b fds ${fds(b.pid)} (baseline ${base.b}); ${Date.now() - t0} ms in all`);
  const ma = await a.metrics();
  t.is(sumSamples(ma, 'istio_tcp_connections_closed_total'), N);
  t.is(await failures(a), 0);
  t.is(await failures(b), 0);
});
