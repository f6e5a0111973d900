import test, { type ExecutionContext } from 'ava';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateRoot } from '../../../src/ca/root';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, loadXdsCodec } from '../../../src/xds/proto';
import { AdsClient } from '../../../src/xds/ads-client';
import { XDS_INITIAL_BACKOFF_MS, XDS_MAX_BACKOFF_MS } from '../../../src/xds/backoff';
import { buildNode } from '../../../src/xds/node';
import { createXdsMetrics } from '../../../src/xds/metrics';
import { createLogger } from '../../../src/logging/logger';
import { createRegistry } from '../../../src/metrics/registry';
import { LogCollector } from '../../helpers/log-collector';
import { exchange, startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { loopbackBlock } from '../../helpers/loopback';
import { renderLocalConfig, waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { parseLocalConfig } from '../../../src/state/local-config';
import { buildSnapshot } from '../../../src/controlplane/snapshot';
import { sumSamples } from '../../helpers/prom-text';
import { socksConnect } from '../../helpers/socks-client';
import { XdsMesh, type XdsAttemptDump, type XdsNode } from './harness';

/**
 * The xDS stream's failure paths against the real dev control plane: a restart (reconnect
 * with initial_resource_versions while traffic keeps flowing, removals made meanwhile
 * applied), readiness that waits for a control plane that is not up yet, and refusals (wrong
 * root, rejected token) that name the cause and retry with growing backoff.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const GONE = ip(30);

function doc(withGone: boolean): LocalConfigDoc {
  return {
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'server', ips: [SERVER], node: 'node-b' },
      ...(withGone ? [{ name: 'gone', ips: [GONE], node: 'node-b' }] : []),
    ],
  };
}

/** Writes `text` on a connection that stays open and waits for the echo of every byte. */
function echoOnce(s: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`echo of ${JSON.stringify(text)} incomplete: ${JSON.stringify(got)}`)), 10_000);
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length < text.length) return;
      clearTimeout(timer);
      s.off('data', onData);
      resolve(got);
    };
    s.on('data', onData);
    s.write(text);
  });
}

/**
 * The reconnect schedule as the client recorded it: after N consecutive failures of `kind`
 * the waits are 20, 40, 80, … ms (doubled before the first wait), capped at `capMs`, and
 * each next attempt started no earlier than its wait (a lower bound only: timers are
 * never early, a loaded machine may be late).
 */
function assertSchedule(t: ExecutionContext, attempts: readonly XdsAttemptDump[], kind: string, capMs: number): void {
  const done = attempts.filter((a) => a.waitMs !== null);
  t.true(done.length >= 4, JSON.stringify(attempts));
  t.is(done[0]!.connection, 1, 'the history starts at the first attempt');
  done.forEach((a, i) => {
    t.is(a.termination, kind, JSON.stringify(a));
    t.is(a.waitMs, Math.min(capMs, XDS_INITIAL_BACKOFF_MS * 2 ** (i + 1)), `attempt ${a.connection}: ${JSON.stringify(done.map((x) => x.waitMs))}`);
    const next = attempts.find((x) => x.connection === a.connection + 1);
    if (next) t.true(next.startedAtMs - a.endedAtMs! >= a.waitMs! - 1, `attempt ${next.connection} started ${next.startedAtMs - a.endedAtMs!}ms after attempt ${a.connection} ended (wait ${a.waitMs}ms)`);
  });
}

let mesh: XdsMesh;
let a: XdsNode;
let echo: EchoServer;

test.before(async () => {
  mesh = new XdsMesh(['node-a', 'node-b', 'node-c', 'node-d', 'node-e', 'node-f', 'node-g']);
  mesh.writeConfig(doc(true));
  await mesh.startControlPlane();
  echo = await startEchoServer(SERVER, 8080);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
  await mesh.startNode('node-b');
});

test.after.always(async () => {
  await mesh?.close();
  await echo?.close();
});

/**
 * New connections through node-a, back to back on `lanes` parallel lanes, until stop() (or
 * a bound on the count): every one must connect over HBONE and echo its payload.
 */
function continuousTraffic(lanes: number, maxPerLane: number): { completed: () => number; stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const lane = async (n: number): Promise<void> => {
    for (let i = 0; running && i < maxPerLane; i++) {
      const payload = `lane${n}-${i}`;
      try {
        const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
        try {
          const got = (await exchange(s, Buffer.from(payload))).toString();
          if (got === payload) ok++;
          else failed.push(`${payload}: echoed ${JSON.stringify(got)}`);
        } finally {
          s.destroy();
        }
      } catch (err) {
        failed.push(`${payload}: ${(err as Error).message}`);
      }
    }
  };
  const all = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)));
  return {
    completed: () => ok,
    stop: async () => {
      running = false;
      await all;
      return { ok, failed };
    },
  };
}

test.serial('control plane restart: live and new connections keep working, the client reconnects with initial_resource_versions, removals made meanwhile apply', async (t) => {
  const live = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.teardown(() => live.destroy());
  t.is(await echoOnce(live, 'before'), 'before');
  const firstConnection = a.xdsDump().connectionId;
  const failedBefore = sumSamples(await a.metrics(), 'istio_tcp_connections_failed_total', {});
  // Traffic flows without pause from before the stop until after the reconnect (bounded: 3 lanes × 2,000).
  const traffic = continuousTraffic(3, 2000);
  await new Promise((r) => setTimeout(r, 100));

  await mesh.stopControlPlane();
  await waitUntil(() => a.xdsDump().state !== 'connected', 5000, () => 'stream down');
  // Down for a while: connections keep completing on the state the proxy holds.
  const atStop = traffic.completed();
  await waitUntil(() => traffic.completed() >= atStop + 10, 10_000, () => 'traffic while the control plane is down');
  // The state stays in force: the live connection and a new one both work without the control plane.
  t.is(await echoOnce(live, 'during'), 'during');
  const fresh = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.is((await exchange(fresh, Buffer.from('new'))).toString(), 'new');
  fresh.destroy();
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: GONE }));

  // While it is down, a workload disappears from the served file.
  mesh.writeConfig(doc(false));
  const cp = await mesh.startControlPlane();
  await waitUntil(() => a.xdsDump().state === 'connected' && a.xdsDump().connectionId > firstConnection, 10_000, () => `reconnect: ${JSON.stringify(a.xdsDump())}`);
  await waitUntil(() => a.app.state.findWorkloadByAddr({ network: '', ip: GONE }) === undefined, 5000, () => 'removal after reconnect');
  // The new stream started from what the client held: every Address it knew was listed.
  const initial = cp.xds.stats.initialVersions.filter((v) => v.typeUrl === ADDRESS_TYPE);
  t.true(initial.length >= 2 && initial.every((v) => v.count === 3), JSON.stringify(initial));
  t.is(await echoOnce(live, 'after'), 'after');
  await new Promise((r) => setTimeout(r, 100));
  const { ok, failed } = await traffic.stop();
  t.deepEqual(failed, [], 'no connection failed while the control plane restarted');
  t.true(ok >= 10, `${ok} connections completed during the restart`);
  t.log(`${ok} connections during the control plane restart, 0 failed`);
  const m = await a.metrics();
  t.is(sumSamples(m, 'istio_tcp_connections_failed_total', {}), failedBefore, 'the proxy counted no failed connection either');
  t.true(sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'Reconnect' }) + sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'ConnectionError' }) >= 1);
});

test.serial('a wrong XDS_ROOT_CA: the failure names the address and the root, retries back off, readiness stays pending', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zt-xds-otherroot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const other = await loadOrCreateRoot(dir, 'cluster.local', Date.now());
  const n = await mesh.startNode('node-c', { XDS_ROOT_CA: other.certPem }, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 5 && n.xdsDump().lastError !== null, 10_000, () => `retries: ${JSON.stringify(n.xdsDump())}`);
  const d = n.xdsDump();
  t.is(d.lastError?.reason, 'XDS_TLS');
  t.true(d.lastError!.message.includes(mesh.address), d.lastError!.message);
  t.regex(d.lastError!.message, /XDS_ROOT_CA/);
  t.false(n.app.runtime.readiness.isReady());
  t.true(n.app.runtime.readiness.pendingTasks().includes('state'));
  const m = await n.metrics();
  t.true(sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'ConnectionError' }) >= 3);
  assertSchedule(t, d.attempts, 'ConnectionError', XDS_MAX_BACKOFF_MS);
  t.true(n.logs.find((l) => l['reason'] === 'XDS_TLS').length >= 3);
});

test.serial('a rejected token: XDS_AUTH naming AUTH_TOKEN, retried with backoff', async (t) => {
  const n = await mesh.startNode('node-d', { AUTH_TOKEN: 'not-a-listed-token' }, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 6 && n.xdsDump().lastError !== null, 10_000, () => `retries: ${JSON.stringify(n.xdsDump())}`);
  const d = n.xdsDump();
  t.is(d.lastError?.reason, 'XDS_AUTH');
  // ztunnel's schedule, read back from the client's own record of its attempts: 20, 40, 80, 160, 320 ms.
  assertSchedule(t, d.attempts, 'Error', XDS_MAX_BACKOFF_MS);
  t.regex(d.lastError!.message, /UNAUTHENTICATED.*unknown bearer token.*AUTH_TOKEN/);
  t.true(sumSamples(await n.metrics(), 'istio_xds_connection_terminations_total', { reason: 'Error' }) >= 2);
  t.false(n.app.runtime.readiness.isReady());
});

test.serial('readiness waits for the first response of every type: a node started before its control plane becomes ready when it appears', async (t) => {
  await mesh.stopControlPlane();
  const n = await mesh.startNode('node-e', {}, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 2, 5000, () => 'retrying');
  t.false(n.app.runtime.readiness.isReady());
  t.is(n.xdsDump().lastError?.reason, 'XDS_UNREACHABLE');
  t.regex(n.xdsDump().lastError!.message, /cannot connect.*XDS_ADDRESS/);
  await mesh.startControlPlane();
  await waitUntil(() => n.app.runtime.readiness.isReady(), 20_000, () => `ready: ${n.app.runtime.readiness.pendingTasks().join(',')} ${JSON.stringify(n.xdsDump())}`);
  t.truthy(n.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
});

test.serial('a host DNS cannot resolve: the failure says DNS and names the host, and the client retries with backoff', async (t) => {
  const host = 'xds.no-such-host.invalid';
  const n = await mesh.startNode('node-f', { XDS_ADDRESS: `https://${host}:15012` }, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 3 && n.xdsDump().lastError !== null, 20_000, () => `retries: ${JSON.stringify(n.xdsDump())}`);
  const d = n.xdsDump();
  t.is(d.lastError?.reason, 'XDS_UNREACHABLE');
  t.regex(d.lastError!.message, /DNS cannot resolve the host "xds\.no-such-host\.invalid"/);
  t.regex(d.lastError!.message, /XDS_ADDRESS/);
  t.true(d.attempts.filter((a) => a.termination === 'ConnectionError').length >= 2);
  t.false(n.app.runtime.readiness.isReady());
});

test.serial('the backoff is capped: a client with a low cap against a refusing control plane waits 20, 40, 80, then the cap', async (t) => {
  const logs = new LogCollector();
  const client = new AdsClient({
    address: mesh.address,
    rootCa: join(mesh.dir, 'ca', 'root-cert.pem'),
    altHostname: null,
    authToken: 'refused-token',
    clusterId: 'Kubernetes',
    headers: [],
    node: buildNode({ instanceIp: '127.0.0.1', podName: 'ztunnel-capped', podNamespace: 'istio-system', nodeName: 'capped', meta: {}, metaJson: {} }),
    onDemand: false,
    types: [ADDRESS_TYPE, AUTHORIZATION_TYPE],
    codec: loadXdsCodec(),
    handler: async () => [],
    metrics: createXdsMetrics(createRegistry({ component: 'test', processMetrics: false })),
    logger: createLogger({ level: 'debug', format: 'json', destination: logs }),
    maxBackoffMs: 100,
  });
  t.teardown(() => client.close());
  client.start();
  const dump = (): { attempts: XdsAttemptDump[] } => client.dump() as { attempts: XdsAttemptDump[] };
  await waitUntil(() => dump().attempts.filter((a) => a.waitMs !== null).length >= 6, 10_000, () => JSON.stringify(client.dump()));
  assertSchedule(t, dump().attempts, 'Error', 100);
  t.deepEqual(dump().attempts.slice(0, 6).map((a) => a.waitMs), [20, 40, 80, 100, 100, 100]);
  // Every refusal was logged with the wait the client chose.
  t.deepEqual(logs.find((l) => l['reason'] === 'XDS_AUTH').slice(0, 6).map((l) => l['retryInMs']), [20, 40, 80, 100, 100, 100]);
});

test.serial('readiness needs an ACK: a node whose first Address response is NACKed stays not ready until a response of that type is accepted', async (t) => {
  const cp = mesh.cp!;
  const codec = loadXdsCodec();
  const parsed = parseLocalConfig(renderLocalConfig(doc(false)), 'fixture');
  if (!parsed.ok) throw new Error('fixture');
  const snap = buildSnapshot(codec, parsed.value);
  const addresses = new Map(snap.get(ADDRESS_TYPE)!);
  const uid = 'Kubernetes//Pod/default/broken';
  addresses.set(uid, { name: uid, version: 'v-bad', value: codec.address.encode({ workload: { uid, name: 'broken', namespace: 'default', addresses: [Buffer.from([10, 1])] } }).finish(), aliases: [], related: [] });
  cp.xds.update(new Map([...snap, [ADDRESS_TYPE, addresses]]));

  const n = await mesh.startNode('node-g', {}, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().types[ADDRESS_TYPE]!.lastNack !== null && n.xdsDump().types[AUTHORIZATION_TYPE]!.lastAck !== null, 10_000, () => JSON.stringify(n.xdsDump()));
  // The valid resources of the NACKed response were applied, yet the proxy is not ready.
  t.truthy(n.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
  t.deepEqual(n.xdsDump().awaitingFirstAck, [ADDRESS_TYPE]);
  t.false(n.app.runtime.readiness.isReady());
  t.true(n.app.runtime.readiness.pendingTasks().includes('state'));
  t.is(n.xdsDump().types[ADDRESS_TYPE]!.lastAck, null);

  // The next push of the type (the file edited) no longer carries the bad resource: ACKed, ready.
  mesh.writeConfig(doc(true));
  await waitUntil(() => n.app.runtime.readiness.isReady(), 10_000, () => `ready: ${n.app.runtime.readiness.pendingTasks().join(',')} ${JSON.stringify(n.xdsDump())}`);
  t.deepEqual(n.xdsDump().awaitingFirstAck, []);
  t.truthy(n.xdsDump().types[ADDRESS_TYPE]!.lastAck);
  t.truthy(n.app.state.findWorkloadByAddr({ network: '', ip: GONE }));
});
