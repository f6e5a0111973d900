import test from 'ava';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { exchange, startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { loopbackBlock } from '../../helpers/loopback';
import { waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { sumSamples } from '../../helpers/prom-text';
import { buildSnapshot } from '../../../src/controlplane/snapshot';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, loadXdsCodec } from '../../../src/xds/proto';
import { parseLocalConfig } from '../../../src/state/local-config';
import { renderLocalConfig } from '../../helpers/node-harness';
import { XdsMesh, type XdsNode } from './harness';

/**
 * Node proxies on delta xDS from the dev control plane (real gRPC over TLS): initial sync
 * and readiness, then every resource kind added, changed and removed in the served file
 * and seen in routing and policy decisions, and a NACK that names a malformed resource
 * while the rest of the push is applied.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const SERVER2 = ip(21);
const VIP = ip(100);

const DENY_CLIENT = { name: 'deny-client', namespace: 'default', scope: 'WorkloadSelector', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/client' }] }]]] };

function doc(o: { policies?: string[]; server2?: boolean; service?: Record<number, number> | null; denyRules?: unknown } = {}): LocalConfigDoc {
  const svcKey = 'default/echo.default.svc.cluster.local';
  return {
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'server', ips: [SERVER], node: 'node-b', authorizationPolicies: o.policies ?? [], services: { [svcKey]: { 80: 8080 } } },
      ...(o.server2 ? [{ name: 'server2', ips: [SERVER2], node: 'node-b', services: { [svcKey]: { 80: 8080 } } }] : []),
    ],
    services: o.service === null ? [] : [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: VIP, ports: o.service ?? { 80: 8080 } }],
    policies: [o.denyRules ? { ...DENY_CLIENT, rules: o.denyRules } : DENY_CLIENT],
  };
}

let mesh: XdsMesh;
let a: XdsNode;
let b: XdsNode;
let echo: EchoServer;
let echo2: EchoServer;

test.before(async () => {
  mesh = new XdsMesh(['node-a', 'node-b']);
  mesh.writeConfig(doc());
  await mesh.startControlPlane();
  echo = await startEchoServer(SERVER, 8080);
  echo2 = await startEchoServer(SERVER2, 8080);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
  b = await mesh.startNode('node-b');
});

test.after.always(async () => {
  await mesh?.close();
  await echo?.close();
  await echo2?.close();
});

async function send(host: string, port: number): Promise<string> {
  const s = await socksConnect(a.listener('socks5'), { host, port }, CLIENT);
  try {
    return (await exchange(s, Buffer.from('ping'))).toString();
  } finally {
    s.destroy();
  }
}

/** Waits until node `n` has applied a push that makes `cond` true. */
async function until(n: XdsNode, cond: () => boolean, what: string): Promise<void> {
  await waitUntil(cond, 10_000, () => `${n.name}: ${what}; xds dump ${JSON.stringify(n.xdsDump())}`);
}

test.serial('initial sync: every type answered and ACKed, readiness true, state from xDS only, metrics with ztunnel names', async (t) => {
  for (const n of [a, b]) {
    t.true(n.app.runtime.readiness.isReady());
    const d = n.xdsDump();
    t.is(d.state, 'connected');
    for (const type of [ADDRESS_TYPE, AUTHORIZATION_TYPE]) {
      t.truthy(d.types[type]!.lastAck, `${n.name} ${type} ACKed`);
      t.is(d.types[type]!.lastNack, null);
      t.not(d.types[type]!.nonce, '');
    }
    t.is(d.types[ADDRESS_TYPE]!.resources, 3); // two workloads + one service
    t.is(d.types[AUTHORIZATION_TYPE]!.resources, 1);
    t.truthy(n.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
    const m = await n.metrics();
    t.true(sumSamples(m, 'istio_xds_message_total', { url: ADDRESS_TYPE }) >= 1);
    t.true(sumSamples(m, 'istio_xds_message_bytes_total', { url: ADDRESS_TYPE }) > 100);
  }
  // /config_dump carries the xds section from the component's dump().
  const dump = JSON.parse(await (await fetch(`http://${a.app.runtime.currentAddresses().admin!.ip}:${a.app.runtime.currentAddresses().admin!.port}/config_dump`)).text()) as Record<string, unknown>;
  t.like(dump['xds'], { state: 'connected', address: mesh.address });
  t.is(await send(SERVER, 8080), 'ping');
});

test.serial('policy: adding, changing and removing an Authorization in the served file changes the next decision', async (t) => {
  mesh.writeConfig(doc({ policies: ['default/deny-client'] }));
  await until(b, () => (b.app.state.findWorkloadByAddr({ network: '', ip: SERVER })?.authorizationPolicies.length ?? 0) === 1, 'policy attached');
  const denied = await t.throwsAsync(send(SERVER, 8080));
  t.is((denied as SocksReplyError).code, 0x02);
  // Change the policy so it no longer matches the client: allowed again.
  mesh.writeConfig(doc({ policies: ['default/deny-client'], denyRules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/nobody' }] }]]] }));
  await until(b, () => JSON.stringify(b.app.updater.view.findPolicy('default/deny-client')?.rules).includes('nobody'), 'policy changed');
  t.is(await send(SERVER, 8080), 'ping');
  // Back to denying, then remove the policy resource: allowed.
  mesh.writeConfig(doc({ policies: ['default/deny-client'] }));
  await until(b, () => !JSON.stringify(b.app.updater.view.findPolicy('default/deny-client')?.rules).includes('nobody'), 'policy changed back');
  await t.throwsAsync(send(SERVER, 8080));
  const text = renderLocalConfig(doc({ policies: [] })).replace(/policies:[\s\S]*$/, 'policies: []\n');
  mesh.writeRaw(text);
  await until(b, () => b.app.updater.view.findPolicy('default/deny-client') === undefined, 'policy removed');
  t.is(await send(SERVER, 8080), 'ping');
});

test.serial('workloads and services: add an endpoint, change a service port, remove the service and a workload; routing follows', async (t) => {
  t.is(await send(VIP, 80), 'ping');
  // Add a second endpoint: the service now has two.
  mesh.writeConfig(doc({ server2: true }));
  await until(a, () => a.app.state.endpointsOf(a.app.state.findServiceByVip({ network: '', ip: VIP })!).length === 2, 'second endpoint');
  for (let i = 0; i < 20 && echo2.peers.length === 0; i++) t.is(await send(VIP, 80), 'ping');
  t.true(echo2.peers.length > 0, 'the new endpoint got traffic');
  // Change the service's port map: port 81 now exists, 80 is gone.
  mesh.writeConfig(doc({ server2: true, service: { 81: 8080 } }));
  await until(a, () => a.app.state.findServiceByVip({ network: '', ip: VIP })?.ports[81] === 8080, 'service port changed');
  t.is(await send(VIP, 81), 'ping');
  // Remove the service: the VIP is no longer a service (passthrough to an address nobody serves).
  mesh.writeConfig(doc({ server2: true, service: null }));
  await until(a, () => a.app.state.findServiceByVip({ network: '', ip: VIP }) === undefined, 'service removed');
  await t.throwsAsync(send(VIP, 81));
  // Remove a workload: its IP is unknown again and its endpoint entry is gone.
  mesh.writeConfig(doc({ service: null }));
  await until(a, () => a.app.state.findWorkloadByAddr({ network: '', ip: SERVER2 }) === undefined, 'workload removed');
  t.is(a.app.state.findWorkloadByUid('cluster1//v1/Pod/default/server2'), undefined);
  // Endpoints before their service: the workload still names the service; re-adding the service finds it.
  mesh.writeConfig(doc());
  await until(a, () => a.app.state.findServiceByVip({ network: '', ip: VIP }) !== undefined, 'service back');
  t.is(a.app.state.endpointsOf(a.app.state.findServiceByVip({ network: '', ip: VIP })!).length, 1);
  t.is(await send(VIP, 80), 'ping');
});

test.serial('a bad edit of the served file keeps the last good version served (and logs why)', async (t) => {
  const before = a.xdsDump().types[ADDRESS_TYPE]!.nonce;
  mesh.writeRaw('workloads:\n  - uid: x\n    name: x\n    namespace: default\n    workloadIps: ["not-an-ip"]\n');
  await waitUntil(() => mesh.cpLogs.find((l) => String(l['msg']).startsWith('local config rejected')).length > 0, 5000, () => 'rejection log');
  const line = mesh.cpLogs.find((l) => String(l['msg']).startsWith('local config rejected'))[0]!;
  t.regex(JSON.stringify(line['errors']), /not-an-ip/);
  t.is(a.xdsDump().types[ADDRESS_TYPE]!.nonce, before, 'nothing was pushed');
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
  mesh.writeConfig(doc());
});

test.serial('NACK: a malformed resource is rejected by name with the reason, the others in the push are applied', async (t) => {
  const codec = loadXdsCodec();
  const parsed = parseLocalConfig(renderLocalConfig(doc({ server2: true })), 'x');
  if (!parsed.ok) throw new Error('fixture');
  const snap = buildSnapshot(codec, parsed.value);
  const addresses = new Map(snap.get(ADDRESS_TYPE)!);
  const bad = codec.address.encode({ workload: { uid: 'Kubernetes//Pod/default/broken', name: 'broken', namespace: 'default', addresses: [Buffer.from([10, 1, 2])] } }).finish();
  addresses.set('Kubernetes//Pod/default/broken', { name: 'Kubernetes//Pod/default/broken', version: 'v-bad', value: bad, aliases: [], related: [] });
  mesh.cp!.xds.update(new Map([...snap, [ADDRESS_TYPE, addresses]]));
  await until(a, () => a.xdsDump().types[ADDRESS_TYPE]!.lastNack !== null, 'NACK');
  const nack = a.xdsDump().types[ADDRESS_TYPE]!.lastNack!;
  t.is(nack.error, 'Kubernetes//Pod/default/broken: workload.addresses[0]: 3 bytes is not an IP address (expected 4 or 16)');
  // The valid resource of the same push (server2) was applied.
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER2 }));
  await waitUntil(() => mesh.cp!.xds.stats.nacks.length >= 2, 5000, () => 'server saw both NACKs');
  t.true(mesh.cp!.xds.stats.nacks.every((n) => n.error.startsWith('Kubernetes//Pod/default/broken: ')));
  t.true(a.logs.find((l) => l['reason'] === 'XDS_REJECTED').length >= 1);
  // The next edit of the file replaces the injected push (the file itself is unchanged so far).
  mesh.writeConfig(doc({ service: { 80: 8080, 82: 8080 } }));
  await until(a, () => a.app.state.findWorkloadByAddr({ network: '', ip: SERVER2 }) === undefined, 'back to the file');
});
