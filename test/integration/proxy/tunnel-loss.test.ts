import test from 'ava';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { spawnChildNode } from '../../helpers/child-node';
import { waitUntil } from '../../helpers/node-harness';
import { fdCount, settledFdCount } from '../../helpers/proc';
import { sumSamples } from '../../helpers/prom-text';
import { socksConnect } from '../../helpers/socks-client';
import { endOf, startMeshOfTwo, startTwoNodes } from '../../helpers/two-nodes';

/**
 * An HBONE tunnel that dies abnormally (issue 11 defects 1 and 2) must reach the
 * application as a TCP RST on both sides, with TUNNEL_LOST in the access log and metrics of
 * both proxies; only a real END_STREAM is a FIN. Child-process proxies let the tests freeze
 * (SIGSTOP) and kill (SIGKILL) a peer; PINGs are tuned down so the loss is noticed in < 1 s.
 */

const PING = { HBONE_PING_INTERVAL: '200ms', HBONE_PING_TIMEOUT: '600ms' };

/** An app that streams to its client as fast as the path takes it, until told to stop. */
function firehose(sockets: Socket[], stop: { now: boolean }): (s: Socket) => void {
  const chunk = Buffer.alloc(16 * 1024, 0x5a);
  return (s) => {
    sockets.push(s);
    const pump = (): void => {
      while (!stop.now && !s.destroyed) if (!s.write(chunk)) return void s.once('drain', pump);
    };
    pump();
  };
}

/** An IPv4 socket's local and remote address as /proc/net/tcp writes them. */
function tupleOf(s: Socket): [string, string] {
  const hex = (ip: string, port: number): string =>
    `${ip.split('.').map((n) => Number(n).toString(16).padStart(2, '0')).reverse().join('')}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
  return [hex(s.localAddress!, s.localPort!), hex(s.remoteAddress!, s.remotePort!)];
}

/** The TCP state (hex, '01' = ESTABLISHED, '08' = CLOSE_WAIT) of a connection, or null once it is gone. */
function tcpState([local, remote]: [string, string]): string | null {
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return f[3] ?? null;
  }
  return null;
}

test.serial('frozen peer (SIGSTOP): the client sees ECONNRESET, not EOF, and both proxies record TUNNEL_LOST', async (t) => {
  const appSockets: Socket[] = [];
  const stop = { now: false };
  const { ip, mesh } = await startMeshOfTwo(t, firehose(appSockets, stop));
  const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${ip(1)}:0`, ...PING });
  const b = await spawnChildNode(t, mesh, 'node-b', PING);
  const c = await socksConnect(a.listener('socks5'), { host: ip(20), port: 8080 }, ip(10));
  t.teardown(() => c.destroy());
  let got = 0;
  c.on('data', (d: Buffer) => (got += d.length));
  await waitUntil(() => got > 1024 * 1024, 10_000, () => `download started (${got} bytes)`);
  const clientEnd = endOf(c, 10_000);
  const appEnd = endOf(appSockets[0]!, 20_000);
  stop.now = true;

  process.kill(b.pid, 'SIGSTOP');
  const t0 = Date.now();
  t.is(await clientEnd, 'ECONNRESET', 'a frozen peer must not look like a complete download');
  const cut = Date.now() - t0;
  t.log(`client reset ${cut} ms after the peer froze, after ${(got / 1048576).toFixed(1)} MiB (PING every 200 ms, 600 ms timeout)`);
  t.true(cut < 5000, `the loss took ${cut} ms to notice`);
  await waitUntil(() => a.access('connection complete').length === 1, 5000, () => 'node-a recorded the connection');
  t.like(a.access('connection complete')[0], { reason: 'TUNNEL_LOST', direction: 'outbound' });
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'TUNNEL_LOST' }), 1);
  t.is(sumSamples(await a.metrics(), 'istio_tcp_connections_failed_total'), 1);

  // The frozen node wakes up to a dead connection: it resets the app and records the loss.
  process.kill(b.pid, 'SIGCONT');
  t.is(await appEnd, 'ECONNRESET', 'the destination app is reset too, not given a FIN');
  await waitUntil(() => b.access('connection complete').length === 1, 10_000, () => 'node-b recorded the connection');
  t.like(b.access('connection complete')[0], { reason: 'TUNNEL_LOST', direction: 'inbound' });
  t.is(sumSamples(await b.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'TUNNEL_LOST' }), 1);
});

test.serial('peer force-closes at its drain deadline: ECONNRESET on both apps, TUNNEL_LOST at the source, DRAINED at the peer', async (t) => {
  const appSockets: Socket[] = [];
  const stop = { now: false };
  const { ip, a, b } = await startTwoNodes(t, { b: { CONNECTION_TERMINATION_DEADLINE: '500ms' } }, firehose(appSockets, stop));
  const c = await socksConnect(a.listener('socks5'), { host: ip(20), port: 8080 }, ip(10));
  t.teardown(() => c.destroy());
  let got = 0;
  c.on('data', (d: Buffer) => (got += d.length));
  await waitUntil(() => got > 256 * 1024, 10_000, () => 'download started');
  const clientEnd = endOf(c, 10_000);
  const appEnd = endOf(appSockets[0]!, 10_000);
  stop.now = true;
  const t0 = Date.now();
  await b.close();
  t.is(await clientEnd, 'ECONNRESET', 'a stream cut at the peer drain deadline must not look like EOF');
  t.is(await appEnd, 'ECONNRESET');
  t.log(`node-b stopped after ${Date.now() - t0} ms; the client was reset after ${(got / 1048576).toFixed(1)} MiB`);
  await waitUntil(() => a.access('connection complete').length === 1, 5000, () => 'node-a recorded the connection');
  t.like(a.access('connection complete')[0], { reason: 'TUNNEL_LOST' });
  t.like(b.access('connection complete')[0], { reason: 'DRAINED' });
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'TUNNEL_LOST' }), 1);
});

test.serial('dead tunnel, app not reading: the destination proxy resets the app connection at once and its descriptors return to the baseline (defect 2)', async (t) => {
  const appSockets: Socket[] = [];
  const { ip, mesh } = await startMeshOfTwo(t, (s) => {
    appSockets.push(s);
    s.pause(); // never reads: the destination proxy's buffers for it fill up
  });
  const b = await spawnChildNode(t, mesh, 'node-b');
  const a = await spawnChildNode(t, mesh, 'node-a', { SOCKS5_ADDR: `${ip(1)}:0` });
  const base = await settledFdCount(b.pid);
  const c = await socksConnect(a.listener('socks5'), { host: ip(20), port: 8080 }, ip(10));
  c.on('error', () => undefined);
  t.teardown(() => c.destroy());
  // Upload until the path is full (no 'drain' for 1 s), bounded at 256 MiB.
  const chunk = Buffer.alloc(256 * 1024, 0x33);
  let sent = 0;
  for (;;) {
    while (sent < 256 * 1024 * 1024 && c.write(chunk)) sent += chunk.length;
    const drained = await Promise.race([new Promise((r) => c.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 1000))]);
    if (!drained || sent >= 256 * 1024 * 1024) break;
    sent += chunk.length;
  }
  await waitUntil(() => appSockets.length === 1, 5000, () => 'app connected');
  const appTuple = tupleOf(appSockets[0]!);
  t.is(tcpState(appTuple), '01', 'the app connection is established');
  const held = fdCount(b.pid);
  t.true(held >= base + 2, `node-b holds the HBONE connection and the app connection (${base} → ${held})`);

  process.kill(a.pid, 'SIGKILL'); // the source proxy goes away (a rolling restart)
  const t0 = Date.now();
  await waitUntil(() => b.access('connection complete').length === 1, 5000, () => 'node-b recorded the lost tunnel');
  let now = fdCount(b.pid);
  while (now > base && Date.now() - t0 < 5000) {
    await new Promise((r) => setTimeout(r, 50));
    now = fdCount(b.pid);
  }
  const took = Date.now() - t0;
  t.true(now <= base, `node-b descriptors back to the baseline (${base}), not ${now}`);
  const line = b.access('connection complete')[0]!;
  t.like(line, { reason: 'TUNNEL_LOST', direction: 'inbound' });
  t.true(Number(line['bytes_discarded']) > 0, `bytes held for the app were counted as discarded: ${String(line['bytes_discarded'])}`);
  // An app that is not reading cannot observe the reset through read(): Linux hands it the
  // queued bytes and then EOF. The kernel's socket table tells: a FIN would leave the app's
  // socket in CLOSE_WAIT, an RST removes it from the table at once.
  t.is(tcpState(appTuple), null, `the app connection was reset (a FIN would leave it in CLOSE_WAIT, state ${String(tcpState(appTuple))})`);
  t.log(`uploaded ${(sent / 1048576).toFixed(1)} MiB into a stalled app; node-b fds ${base} → ${held} → ${now} within ${took} ms of the peer dying; ${String(line['bytes_discarded'])} bytes discarded, ${String(line['bytes_recv'])} delivered`);
});
