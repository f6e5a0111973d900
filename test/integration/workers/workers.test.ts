import test from 'ava';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { httpRequest } from '../../helpers/http';
import { TestMesh, waitUntil, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, type EchoServer } from '../../helpers/echo-server';
import { socksConnect } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { endOf, startTwoNodes } from '../../helpers/two-nodes';
import { loadCapture } from '../../../src/native/capture';

/**
 * ZTUNNEL_WORKER_THREADS=3 on both node proxies: the main thread accepts and spreads
 * connections round-robin over itself and two worker threads. Everything here goes through
 * the product's own paths: SOCKS5 on node-a, HBONE to node-b, node-b's inbound to the app;
 * the checks read what an operator reads (/config_dump, /metrics, /debug/connections, the
 * access log) and what the client sees.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const THREADS = 3;
const WORKLOADS = [
  { name: 'client', ips: [CLIENT], node: 'node-a' },
  { name: 'server', ips: [SERVER], node: 'node-b' },
];
const capture = loadCapture();

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;

interface WorkersDump {
  threads: number;
  mainThreadServed: number;
  workers: { index: number; ready: boolean; handedOff: number }[];
}

async function workersDump(n: TestNode): Promise<WorkersDump> {
  const r = await httpRequest(n.addrs.admin!, '/config_dump');
  return (JSON.parse(r.body) as { workers: WorkersDump }).workers;
}

async function openTunnel(): Promise<Socket> {
  return socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
}

/** A tunnel that stays open after one echoed message. */
async function openLive(): Promise<Socket> {
  const s = await openTunnel();
  s.write('ping');
  await new Promise<void>((r) => s.once('data', () => r()));
  return s;
}

const DENY_CLIENT = { name: 'deny-client', namespace: 'default', scope: 'Namespace', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/client' }] }]]] };

test.before(async () => {
  if (!capture.available) return;
  // Hooks cannot use the per-test mesh helpers (their teardown runs when the hook ends).
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig({ workloads: WORKLOADS });
  await mesh.startCa();
  app = await startEchoServer(SERVER, 8080);
  const env = { ZTUNNEL_WORKER_THREADS: String(THREADS), LOG_LEVEL: 'info' };
  a = await mesh.startNode('node-a', { ...env, SOCKS5_ADDR: `${NODE_A}:0` });
  b = await mesh.startNode('node-b', env);
});

test.after.always(async () => {
  await mesh?.close();
  await app?.close();
});

test.serial('connections are spread round-robin over the main thread and every worker thread, and each is served end to end', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const before = await workersDump(a);
  t.is(before.threads, THREADS);
  t.true(before.workers.every((w) => w.ready));
  const n = THREADS * 4;
  for (let i = 0; i < n; i++) {
    const s = await openTunnel();
    const payload = randomBytes(64 * 1024 + i);
    t.deepEqual(await exchange(s, payload), payload, `connection ${i} echoed intact`);
  }
  const after = await workersDump(a);
  const handed = after.workers.map((w, i) => w.handedOff - (before.workers[i]?.handedOff ?? 0));
  t.deepEqual(handed, [4, 4], 'each worker thread got exactly a third of node-a\'s connections');
  t.is(after.mainThreadServed - before.mainThreadServed, 4, 'and the main thread served the other third');
  // node-b accepted each HBONE connection once; with pooling there may be fewer than n, but every one was handed round-robin too.
  const bDump = await workersDump(b);
  t.true(bDump.workers.reduce((s, w) => s + w.handedOff, 0) >= 1);
});

test.serial('/metrics sums every thread: one opened and one closed connection per tunnel on the reporting node', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const m0 = await a.metrics();
  const opened0 = sumSamples(m0, 'istio_tcp_connections_opened_total', { reporter: 'source' });
  const closed0 = sumSamples(m0, 'istio_tcp_connections_closed_total', { reporter: 'source' });
  const n = THREADS * 2;
  for (let i = 0; i < n; i++) {
    const s = await openTunnel();
    const payload = randomBytes(1000);
    t.deepEqual(await exchange(s, payload), payload);
  }
  // Records are written at close, which may trail the client's view by a moment.
  let m1 = await a.metrics();
  for (let i = 0; i < 50 && sumSamples(m1, 'istio_tcp_connections_closed_total', { reporter: 'source' }) - closed0 < n; i++) {
    await new Promise((r) => setTimeout(r, 100));
    m1 = await a.metrics();
  }
  const opened = sumSamples(m1, 'istio_tcp_connections_opened_total', { reporter: 'source' });
  const closed = sumSamples(m1, 'istio_tcp_connections_closed_total', { reporter: 'source' });
  t.is(opened - opened0, n, 'every thread counted its own connections, summed in one scrape');
  t.is(closed - closed0, n);
  // The process families exist once (the main thread's), not once per thread.
  t.is(m1.samples.filter((s) => s.name === 'istio_build').length, 1);
  // Per-thread figures: one heap series per thread, and each thread's accepted count matches /config_dump's share.
  const heap = m1.samples.filter((s) => s.name === 'ztunnel_ts_thread_heap_used_bytes');
  t.deepEqual(heap.map((s) => s.labels['thread']).sort(), ['0', '1', '2']);
  t.true(heap.every((s) => s.value > 1024 * 1024));
  const d = await workersDump(a);
  const accepted = (thread: string): number => sumSamples(m1, 'ztunnel_ts_thread_connections_accepted_total', { thread });
  t.is(accepted('0'), d.mainThreadServed);
  t.deepEqual([accepted('1'), accepted('2')], d.workers.map((w) => w.handedOff));
});

test.serial('access-log lines of worker threads reach the one log stream, once per connection', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const before = a.access('connection complete').length;
  const n = THREADS * 2;
  for (let i = 0; i < n; i++) {
    const s = await openTunnel();
    const payload = randomBytes(2000);
    t.deepEqual(await exchange(s, payload), payload);
  }
  await waitUntil(() => a.access('connection complete').length - before >= n, 10_000, () => `access lines: ${a.access('connection complete').length - before} of ${n}`);
  await new Promise((r) => setTimeout(r, 200));
  t.is(a.access('connection complete').length - before, n);
  t.is(a.recordedTwice(), 0);
});

test.serial('/debug/connections lists live connections of every thread', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const open: Socket[] = [];
  for (let i = 0; i < THREADS; i++) open.push(await openLive());
  const r = await httpRequest(a.addrs.admin!, '/debug/connections?direction=outbound');
  const body = JSON.parse(r.body) as { count: number; connections: { dst: string }[] };
  t.is(body.count, THREADS);
  for (const s of open) s.destroy();
});

test.serial('a policy change closes live connections that a worker thread holds (its state replica follows the main thread)', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const open: Socket[] = [];
  for (let i = 0; i < THREADS; i++) open.push(await openLive());
  const ends = open.map((s) => endOf(s, 15_000));
  mesh.writeConfig({ workloads: WORKLOADS, policies: [DENY_CLIENT] });
  // node-b re-authorizes its inbound connections in every thread and resets the denied ones.
  t.deepEqual(await Promise.all(ends), open.map(() => 'ECONNRESET'));
  mesh.writeConfig({ workloads: WORKLOADS });
  // Lifted once every thread of node-b has the policy removal: one connection per thread works again.
  await waitUntil(async () => (await b.metrics()).samples.length > 0 && b.app.state.allPolicies().length === 0, 5000, () => 'policy removed on node-b');
  let ok = 0;
  for (let i = 0; i < 50 && ok < THREADS; i++) {
    const s = await openTunnel().catch(() => null);
    const echoed = s ? await exchange(s, Buffer.from('again')).catch(() => null) : null;
    if (echoed?.toString() === 'again') ok++;
    else await new Promise((r) => setTimeout(r, 100));
  }
  t.is(ok, THREADS);
});

test.serial('/logging reaches the worker threads: at error level no thread writes access lines; reset brings them back', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const set = await httpRequest(a.addrs.admin!, '/logging?level=error', 'POST');
  t.is(set.status, 200);
  const before = a.access('connection complete').length;
  for (let i = 0; i < THREADS; i++) {
    const s = await openTunnel();
    t.deepEqual(await exchange(s, Buffer.from('quiet')), Buffer.from('quiet'));
  }
  // Round-robin gave one of these to each thread; none may log at info.
  await new Promise((r) => setTimeout(r, 300));
  t.is(a.access('connection complete').length, before);
  t.is((await httpRequest(a.addrs.admin!, '/logging?reset', 'POST')).status, 200);
  for (let i = 0; i < THREADS; i++) {
    const s = await openTunnel();
    t.deepEqual(await exchange(s, Buffer.from('loud')), Buffer.from('loud'));
  }
  await waitUntil(() => a.access('connection complete').length - before >= THREADS, 5000, () => 'access lines after reset');
});

test('drain reaches every thread: live connections on the main thread and on workers are reset at the deadline and recorded DRAINED once each', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const env = { ZTUNNEL_WORKER_THREADS: String(THREADS), CONNECTION_TERMINATION_DEADLINE: '600ms', LOG_LEVEL: 'info' };
  const two = await startTwoNodes(t, { a: env, b: env });
  const live: Socket[] = [];
  for (let i = 0; i < THREADS; i++) {
    const s = await socksConnect(two.a.listener('socks5'), { host: two.ip(20), port: 8080 }, two.ip(10));
    s.write('in flight');
    await new Promise<void>((r) => s.once('data', () => r()));
    live.push(s);
  }
  const dump = JSON.parse((await httpRequest(two.a.addrs.admin!, '/config_dump')).body) as { workers: WorkersDump };
  t.deepEqual(dump.workers.workers.map((w) => w.handedOff), [1, 1], 'one live connection on each worker thread, one on the main thread');
  const ends = live.map((s) => endOf(s, 10_000));
  const t0 = Date.now();
  await two.a.close();
  t.true(Date.now() - t0 >= 550, 'close waited for the deadline');
  t.deepEqual(await Promise.all(ends), live.map(() => 'ECONNRESET'));
  const drained = two.a.access('connection complete').filter((l) => l['reason'] === 'DRAINED');
  t.is(drained.length, THREADS, 'each thread recorded its own connection, and its lines reached the log before the thread ended');
  t.is(two.a.recordedTwice(), 0);
});

test('thread count from the CPU limit: ZTUNNEL_CPU_LIMIT=1 keeps one thread; 100% of a 2-CPU limit runs two (never more than the host has)', async (t) => {
  if (!capture.available) return t.log(`skipped: worker threads need the native addon (${capture.reason})`);
  const two = await startTwoNodes(t, { a: { ZTUNNEL_CPU_LIMIT: '1' }, b: { ZTUNNEL_WORKER_THREADS: '100%', ZTUNNEL_CPU_LIMIT: '2' } });
  const dumpOf = async (n: TestNode): Promise<{ workers?: WorkersDump & { why: string } }> => JSON.parse((await httpRequest(n.addrs.admin!, '/config_dump')).body) as { workers?: WorkersDump & { why: string } };
  t.is((await dumpOf(two.a)).workers, undefined, 'one thread: no worker threads at all');
  t.like(two.a.logs.find((l) => l['msg'] === 'data-path threads')[0], { threads: 1 });
  t.regex(String(two.a.logs.find((l) => l['msg'] === 'data-path threads')[0]?.['why']), /1 CPUs from ZTUNNEL_CPU_LIMIT/);
  const expected = Math.min(2, availableParallelism());
  const b = (await dumpOf(two.b)).workers;
  t.is(b?.threads ?? 1, expected);
  if (b) t.regex(b.why, /ZTUNNEL_WORKER_THREADS=100% of 2 \(2 CPUs from ZTUNNEL_CPU_LIMIT\)/);
  // Both still carry traffic.
  const s = await socksConnect(two.a.listener('socks5'), { host: two.ip(20), port: 8080 }, two.ip(10));
  t.deepEqual(await exchange(s, Buffer.from('sized')), Buffer.from('sized'));
});
