/**
 * ZDS end to end in one process, as root: the stand-in node agent (NodeAgent) serves pods
 * given as test-made network namespaces; the node proxy's ZdsClient + WorkloadManager +
 * PodListeners open each pod's listeners inside its namespace. Proves readiness waits for
 * the snapshot, pods stay served while the agent is away, the snapshot after an agent
 * restart reconciles, a pod re-added with a new namespace is replaced, and a misbehaving
 * agent gets clear ack errors with every descriptor closed (fd count flat).
 */
import test from 'ava';
import { DEFAULT_SOCKET_OPTIONS } from '../../../src/transport/socket-opts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Topology, rootSkipReason, run } from '../../helpers/netns';
import { buildRedirectSpec } from '../../../src/cli/cmd-redirect';
import { loadConfig } from '../../../src/config/load';
import { AGENT_KEYS } from '../../../src/config/keys-tools';
import { systemExec } from '../../../src/redirect/exec';
import { parsePrometheusText, sumSamples } from '../../helpers/prom-text';
import { loadNetnsAddon, type NetnsAddon } from '../../../src/inpod/netns-addon';
import { PodNetns } from '../../../src/inpod/pod-netns';
import { PodListeners } from '../../../src/inpod/pod-listeners';
import { WorkloadManager } from '../../../src/inpod/workload-manager';
import { ZdsClient } from '../../../src/inpod/zds-client';
import { ZdsCodec } from '../../../src/inpod/zds-codec';
import { NodeAgent } from '../../../src/inpod/agent';
import { createWorkloadManagerMetrics } from '../../../src/inpod/metrics';
import { systemClock } from '../../../src/util/clock';

const MAIN_JS = path.resolve(__dirname, '../../../src/cli/main.js');
const support = loadNetnsAddon();
const skip = support.available ? rootSkipReason(['ip', 'iptables', 'nsenter']) : support.reason;
const addon = (support.available ? support.addon : null) as NetnsAddon;
const codec = new ZdsCodec();
const logger = pino({ level: 'silent' });
const topo = new Topology('zds');
const ns: Record<string, string> = {};
let dir: string;

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const spec = (name: string, netns = ns[name]!) => ({ uid: `uid-${name}`, name, namespace: 'default', serviceAccount: name, netns });

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The node proxy side: listeners answer with their name, so a dial proves where it landed. */
function nodeSide(socketPath: string) {
  const registry = new Registry();
  const readiness: boolean[] = [];
  const listeners = new PodListeners({
    logger,
    specs: [{ name: 'outbound', port: 15001 }, { name: 'inbound', port: 15008 }],
    reusePort: true,
    host: '::',
    onSocket: (s, info) => s.end(`${info.listener}@${info.pod}`),
    tcp: DEFAULT_SOCKET_OPTIONS,
  });
  const manager = new WorkloadManager(listeners.start, createWorkloadManagerMetrics(registry), logger);
  const client = new ZdsClient({ addon, codec, manager, path: socketPath, mark: 0x539, logger, clock: systemClock, onReady: (r) => readiness.push(r), retryPendingMs: 50 });
  const gauge = async (name: string): Promise<number> => sumSamples(parsePrometheusText(await registry.metrics()), name);
  return { listeners, manager, client, readiness, gauge, stop: async () => { await client.close(); listeners.destroy(); manager.stopAll(); } };
}

/** Dials port inside a namespace and returns what the listener said, or the error code. */
async function probe(nsName: string, port: number): Promise<string> {
  const p = PodNetns.open(addon, `/var/run/netns/${nsName}`, 0);
  try {
    const s = p.tcpSocket(4).connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    const result = await new Promise<string>((resolve) => {
      s.once('end', () => resolve(Buffer.concat(chunks).toString()));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    s.destroy();
    return result;
  } finally {
    p.close();
  }
}

test.before(async () => {
  if (skip) return;
  for (const n of ['a', 'b', 'c']) ns[n] = await topo.addNamespace(n);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ztts-zds-'));
});
test.after.always(async () => {
  await topo.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

if (skip) {
  test('ZDS client and agent (skipped)', (t) => {
    t.log(`skipped: ${skip}`);
    t.pass();
  });
} else {
  test.serial('snapshot → ready; add/del over ZDS open and close listeners inside the pod; agent restart reconciles; pods served meanwhile', async (t) => {
    const sock = path.join(dir, 'a.sock');
    const node = nodeSide(sock);
    t.teardown(node.stop);
    await node.client.start();
    t.true(node.readiness.length > 0 && !node.readiness.includes(true), 'not ready before the agent answers');
    let agent = new NodeAgent({ addon, codec, socketPath: sock, podsFile: null, redirect: null, logger });
    await agent.enrol(spec('a'));
    await agent.start();
    await until(() => node.readiness.at(-1) === true, 'readiness after the snapshot');
    t.is(await probe(ns['a']!, 15001), 'outbound@uid-a');
    t.is(await probe(ns['a']!, 15008), 'inbound@uid-a');
    t.is(await probe(ns['b']!, 15001), 'ECONNREFUSED');

    await agent.enrol(spec('b'));
    t.is(await probe(ns['b']!, 15008), 'inbound@uid-b');
    await agent.unenrol('uid-a');
    t.is(await probe(ns['a']!, 15001), 'ECONNREFUSED', 'del closed the pod listeners at once');
    t.is(await node.gauge('workload_manager_active_proxy_count'), 1);

    // The agent goes away: the node proxy keeps serving b and is not ready.
    await agent.close();
    await until(() => node.readiness.at(-1) === false, 'not ready while the agent is away');
    t.is(await probe(ns['b']!, 15001), 'outbound@uid-b');
    // It comes back knowing only c (b was deleted meanwhile): the snapshot stops b, starts c.
    agent = new NodeAgent({ addon, codec, socketPath: sock, podsFile: null, redirect: null, logger });
    t.teardown(() => agent.close());
    await agent.enrol(spec('c'));
    await agent.start();
    await until(() => node.readiness.at(-1) === true && node.manager.podUids().join() === 'uid-c', 'reconciled snapshot');
    t.is(await probe(ns['b']!, 15001), 'ECONNREFUSED');
    t.is(await probe(ns['c']!, 15001), 'outbound@uid-c');
    t.is(await node.gauge('workload_manager_proxies_started_total'), 3);
    t.is(await node.gauge('workload_manager_proxies_stopped_total'), 2);

    // The same pod in a new sandbox (another namespace): its proxy moves there.
    await agent.enrol(spec('c', ns['a']!));
    await until(async () => (await probe(ns['a']!, 15001)) === 'outbound@uid-c', 'pod c moved to the new namespace');
    t.is(await probe(ns['c']!, 15001), 'ECONNREFUSED');
  });

  test.serial('a misbehaving agent: every bad request gets a clear ack error, descriptors are closed, the connection goes on', async (t) => {
    const sock = path.join(dir, 'evil.sock');
    const listenFd = addon.seqpacketListen(sock, 4);
    t.teardown(() => fs.closeSync(listenFd));
    const node = nodeSide(sock);
    t.teardown(node.stop);
    await node.client.start();
    let conn = -1;
    await until(() => (conn = addon.seqpacketAccept(listenFd)) >= 0, 'the node proxy connects');
    const recv = async (): Promise<Buffer> => {
      let m = null;
      await until(() => (m = addon.seqpacketRecv(conn, 4096, 0)) !== null, 'a message');
      return (m as unknown as { data: Buffer }).data;
    };
    t.is(codec.decodeHello(await recv()), 1, 'ZdsHello{V1} first');
    const fdsBefore = openFds();
    const ask = async (data: Buffer, fds: number[]): Promise<string> => {
      addon.seqpacketSend(conn, data, fds);
      return codec.decodeAck(await recv());
    };
    const nsFd = (): number => fs.openSync(`/var/run/netns/${ns['a']}`, 'r');
    const withFds = async (data: Buffer, n: number): Promise<string> => {
      const fds = Array.from({ length: n }, nsFd);
      try {
        return await ask(data, fds);
      } finally {
        for (const f of fds) fs.closeSync(f);
      }
    };
    const add = codec.encodeRequest({ kind: 'add', uid: 'uid-x', info: { name: 'x', namespace: 'default', serviceAccount: 'x' } });
    t.regex(await withFds(add, 0), /add for uid "uid-x" carried 0 descriptors; exactly one/);
    t.regex(await withFds(add, 2), /carried 2 descriptors/);
    t.regex(await withFds(add, 3), /truncated message .*descriptors were closed/);
    t.regex(await withFds(codec.encodeRequest({ kind: 'del', uid: 'uid-x' }), 1), /del carried 1 unexpected descriptor/);
    t.regex(await withFds(Buffer.alloc(6000, 0x0a), 1), /truncated message/);
    t.regex(await withFds(Buffer.from([0x4a, 0x00]), 0), /without a payload/);
    const devNull = fs.openSync('/dev/null', 'r');
    t.regex(await ask(add, [devNull]), /descriptor \d+ is not a network namespace \(it is \/dev\/null\)/);
    fs.closeSync(devNull);
    t.is(await ask(codec.encodeRequest({ kind: 'snapshot_sent' }), []), '');
    t.regex(await ask(codec.encodeRequest({ kind: 'snapshot_sent' }), []), /snapshot_sent received twice/);
    t.is(await withFds(add, 1), '', 'a good add still works on the same connection');
    t.deepEqual(node.manager.podUids(), ['uid-x']);
    t.is(await ask(codec.encodeRequest({ kind: 'del', uid: 'uid-x' }), []), '');
    t.is(openFds(), fdsBefore, 'no namespace descriptor leaked');
    fs.closeSync(conn);
  });

  test.serial('a pod given as /proc/<pid>/ns/net gets the in-pod rules on enrol and loses them on un-enrol', async (t) => {
    const holder = topo.spawn(ns['c']!, 'netns-holder', 'sleep', ['30']);
    t.teardown(() => holder.stop('SIGKILL'));
    // `ip netns exec` enters the namespace and then execs: until it has, /proc/<pid>/ns/net is OUR namespace.
    const target = fs.statSync(`/var/run/netns/${ns['c']}`).ino;
    await until(() => fs.statSync(`/proc/${holder.pid}/ns/net`).ino === target, 'the holder process to be in the namespace');
    const sock = path.join(dir, 'proc.sock');
    const { spec: rules } = buildRedirectSpec(loadConfig(AGENT_KEYS, {}, []).config);
    const agent = new NodeAgent({ addon, codec, socketPath: sock, podsFile: null, redirect: { exec: systemExec(), spec: rules, backend: 'nft' }, logger });
    await agent.start();
    t.teardown(() => agent.close());
    const check = async (): Promise<string> => {
      const r = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-iptables', 'nft', '--redirect-netns', ns['c']!], { env: { PATH: process.env['PATH'] } });
      return `${r.code}: ${r.stdout}${r.stderr}`;
    };
    await agent.enrol({ uid: 'uid-proc', name: 'p', namespace: 'default', serviceAccount: 'p', netns: `/proc/${holder.pid}/ns/net` });
    t.regex(await check(), /^0: capture rules .* are installed and current/, 'rules installed through nsenter into the namespace of the process');
    t.deepEqual(agent.enrolled(), ['uid-proc']);
    await agent.unenrol('uid-proc');
    t.regex(await check(), /^1: capture rules .* are NOT as expected/, 'rules removed');
    await t.throwsAsync(agent.enrol({ uid: 'uid-gone', name: 'g', namespace: 'default', serviceAccount: 'g', netns: '/proc/999999999/ns/net' }), { message: /pod uid-gone: cannot open its network namespace \/proc\/999999999\/ns\/net/ });
  });

  test.serial('the agent refuses a node proxy that speaks another ZDS version', async (t) => {
    const sock = path.join(dir, 'v.sock');
    const agent = new NodeAgent({ addon, codec, socketPath: sock, podsFile: null, redirect: null, logger });
    await agent.start();
    t.teardown(() => agent.close());
    const fd = addon.seqpacketConnect(sock);
    t.teardown(() => fs.closeSync(fd));
    addon.seqpacketSend(fd, codec.encodeHello(2), []);
    let m = null;
    await until(() => (m = addon.seqpacketRecv(fd, 4096, 0)) !== null, 'the agent to close');
    t.is((m as unknown as { data: Buffer }).data.length, 0, 'closed without a snapshot');
    t.is(agent.connections, 0);
  });
}
