import test from 'ava';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateRoot } from '../../../src/ca/root';
import { ADDRESS_TYPE } from '../../../src/xds/proto';
import { exchange, startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { loopbackBlock } from '../../helpers/loopback';
import { waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { sumSamples } from '../../helpers/prom-text';
import { socksConnect } from '../../helpers/socks-client';
import { XdsMesh, type XdsNode } from './harness';

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

let mesh: XdsMesh;
let a: XdsNode;
let echo: EchoServer;

test.before(async () => {
  mesh = new XdsMesh(['node-a', 'node-b', 'node-c', 'node-d', 'node-e']);
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

test.serial('control plane restart: live and new connections keep working, the client reconnects with initial_resource_versions, removals made meanwhile apply', async (t) => {
  const live = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.teardown(() => live.destroy());
  t.is(await echoOnce(live, 'before'), 'before');
  const firstConnection = a.xdsDump().connectionId;

  await mesh.stopControlPlane();
  await waitUntil(() => a.xdsDump().state !== 'connected', 5000, () => 'stream down');
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
  const m = await a.metrics();
  t.true(sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'Reconnect' }) + sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'ConnectionError' }) >= 1);
});

test.serial('a wrong XDS_ROOT_CA: the failure names the address and the root, retries back off, readiness stays pending', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zt-xds-otherroot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const other = await loadOrCreateRoot(dir, 'cluster.local', Date.now());
  const n = await mesh.startNode('node-c', { XDS_ROOT_CA: other.certPem }, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 4 && n.xdsDump().lastError !== null, 10_000, () => `retries: ${JSON.stringify(n.xdsDump())}`);
  const d = n.xdsDump();
  t.is(d.lastError?.reason, 'XDS_TLS');
  t.true(d.lastError!.message.includes(mesh.address), d.lastError!.message);
  t.regex(d.lastError!.message, /XDS_ROOT_CA/);
  t.false(n.app.runtime.readiness.isReady());
  t.true(n.app.runtime.readiness.pendingTasks().includes('state'));
  const m = await n.metrics();
  t.true(sumSamples(m, 'istio_xds_connection_terminations_total', { reason: 'ConnectionError' }) >= 3);
  // Backoff grows: 10 ms doubling.
  t.true(d.retryDelayMs >= 40, JSON.stringify(d));
  t.true(n.logs.find((l) => l['reason'] === 'XDS_TLS').length >= 3);
});

test.serial('a rejected token: XDS_AUTH naming AUTH_TOKEN, retried with backoff', async (t) => {
  const n = await mesh.startNode('node-d', { AUTH_TOKEN: 'not-a-listed-token' }, { waitReady: false });
  t.teardown(() => n.close());
  await waitUntil(() => n.xdsDump().connectionId >= 3 && n.xdsDump().lastError !== null, 10_000, () => `retries: ${JSON.stringify(n.xdsDump())}`);
  const d = n.xdsDump();
  t.is(d.lastError?.reason, 'XDS_AUTH');
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
