import test from 'ava';
import type { Socket } from 'node:net';
import { TestMesh, waitUntil, type LocalConfigDoc, type LocalWorkload, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, waitClosed, type EchoServer } from '../../helpers/echo-server';
import { socksConnect } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { httpRequest } from '../../helpers/http';

/**
 * What a state update costs on a live node: through two real node proxies and the real
 * HBONE pool, an update touches only what it affects. Pooled sessions go only for peers
 * whose identity or address changed; live connections are re-authorized only when a policy
 * selecting their destination changed.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const ALPHA = ip(20);
const BETA = ip(21);

const base = (): LocalWorkload[] => [
  { name: 'client', ips: [CLIENT], node: 'node-a' },
  { name: 'alpha', ips: [ALPHA], node: 'node-b', namespace: 'alpha' },
  { name: 'beta', ips: [BETA], node: 'node-b', namespace: 'beta' },
];

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
const apps: EchoServer[] = [];

/** Writes the config and waits until both nodes applied it. */
async function apply(doc: LocalConfigDoc): Promise<void> {
  const [va, vb] = [a.app.state.version, b.app.state.version];
  mesh.writeConfig(doc);
  await waitUntil(() => a.app.state.version > va && b.app.state.version > vb, 10_000, () => 'config applied on both nodes');
}

async function roundTrip(dst: string): Promise<void> {
  const s = await socksConnect(a.listener('socks5'), { host: dst, port: 8080 }, CLIENT);
  await exchange(s, Buffer.from('ping'));
  s.destroy();
}

/** Writes and reads the echo back, keeping the connection open. */
function echo(s: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length < text.length) return;
      s.off('data', onData);
      resolve(got);
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(text);
  });
}

async function dials(): Promise<number> {
  return sumSamples(await a.metrics(), 'ztunnel_ts_hbone_pool_dials_total');
}

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig({ workloads: base() });
  await mesh.startCa();
  apps.push(await startEchoServer(ALPHA, 8080), await startEchoServer(BETA, 8080));
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
  b = await mesh.startNode('node-b');
});

test.after.always(async () => {
  await mesh?.close();
  await Promise.all(apps.map((x) => x.close()));
});

test.serial('an update that does not move a peer keeps its pooled session; moving one peer evicts only that one', async (t) => {
  await roundTrip(ALPHA);
  await roundTrip(BETA);
  t.is(await dials(), 2, 'one pooled session per peer');

  // beta gains a service endpoint: its identity and address are unchanged.
  await apply({ workloads: base().map((w) => (w.name === 'beta' ? { ...w, services: { 'beta/extra.beta.svc': { 80: 8080 } } } : w)) });
  await roundTrip(ALPHA);
  await roundTrip(BETA);
  t.is(await dials(), 2, 'both sessions were reused');

  // beta's service account changes: its sessions go, alpha's stays.
  await apply({ workloads: base().map((w) => (w.name === 'beta' ? { ...w, serviceAccount: 'beta-v2' } : w)) });
  const sessions = async (): Promise<number> => sumSamples(await a.metrics(), 'ztunnel_ts_hbone_pool_sessions');
  const end = Date.now() + 5000;
  while ((await sessions()) > 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  t.is(await sessions(), 1, "only beta's session was evicted");
  t.deepEqual(a.logs.find((l) => l['msg'] === 'HBONE connection left the pool').map((l) => l['why']), ['peer-evicted']);
  await roundTrip(ALPHA);
  t.is(await dials(), 2, "alpha's session is still used");
  await roundTrip(BETA);
  t.is(await dials(), 3, 'beta is dialled anew and verified against its new identity');
});

const never = { name: 'deny-nobody', namespace: 'alpha', scope: 'Namespace', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: 'cluster.local/ns/none/sa/none' }] }]]] };
const denyClient = { ...never, name: 'deny-client', rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/client' }] }]]] };

test.serial('a policy change in one namespace re-checks only connections to that namespace', async (t) => {
  const workloads = base();
  await apply({ workloads });
  const open = async (dst: string): Promise<Socket> => {
    const s = await socksConnect(a.listener('socks5'), { host: dst, port: 8080 }, CLIENT);
    t.teardown(() => s.destroy());
    await echo(s, 'hello');
    return s;
  };
  const toAlpha = await open(ALPHA);
  const toBeta = await open(BETA);
  await waitUntil(async () => (await b.liveConnections()) === 2, 5000, () => 'two inbound connections on node-b');
  const rechecks = (): Record<string, unknown>[] => b.logs.find((l) => l['msg'] === 'live connections re-authorized after a state change');
  // Every data-path thread of node-b re-checks its own connections and logs one line.
  const threads = (JSON.parse((await httpRequest(b.addrs.admin!, '/config_dump')).body) as { workers?: { threads: number } }).workers?.threads ?? 1;
  const recheckAfter = async (from: number): Promise<{ rechecked: number; closed: number; policies: unknown[] }> => {
    await waitUntil(() => rechecks().length >= from + threads, 5000, () => `a re-authorization log line from each of ${threads} threads`);
    const lines = rechecks().slice(from);
    t.is(lines.length, threads);
    for (const l of lines) t.deepEqual(l['policies'], lines[0]!['policies']);
    return { rechecked: lines.reduce((n, l) => n + Number(l['rechecked']), 0), closed: lines.reduce((n, l) => n + Number(l['closed']), 0), policies: lines[0]!['policies'] as unknown[] };
  };
  const before = rechecks().length;

  await apply({ workloads, policies: [never] });
  t.deepEqual(await recheckAfter(before), { rechecked: 1, closed: 0, policies: ['alpha/deny-nobody'] }, 'only the connection to namespace alpha was re-checked');

  // Denying the client in alpha closes that connection and leaves the one to beta alone.
  const alphaClosed = waitClosed(toAlpha, 10_000);
  const beforeDeny = rechecks().length;
  await apply({ workloads, policies: [never, denyClient] });
  await alphaClosed;
  t.deepEqual(await recheckAfter(beforeDeny), { rechecked: 1, closed: 1, policies: ['alpha/deny-client'] });
  t.is(await echo(toBeta, 'still here'), 'still here');

  // A workload-only update (no policy, no selection change) re-checks nothing.
  const n = rechecks().length;
  await apply({ workloads: workloads.map((w) => (w.name === 'beta' ? { ...w, services: { 'beta/other.beta.svc': { 81: 8080 } } } : w)), policies: [never, denyClient] });
  t.is(rechecks().length, n);
});
