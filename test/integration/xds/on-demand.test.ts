import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DemandLookup } from '../../../src/state/demand';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from '../../../src/xds/proto';
import { exchange, startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { loopbackBlock } from '../../helpers/loopback';
import { renderLocalConfig, waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { XdsMesh, type XdsNode } from './harness';

/**
 * XDS_ON_DEMAND over real gRPC/TLS against the dev control plane. node-a and node-b
 * subscribe to no Address at start ("*" subscribed and unsubscribed at once) and ask for
 * what a connection needs when the state does not know it, each a bounded wait: the
 * destination (`network/ip`), the local client's workload, the inbound peer's workload, a
 * SOCKS5 hostname (`namespace/hostname`), a service's waypoint by hostname, a workload by
 * uid. Their own workloads come from LOCAL_XDS_PATH at the same time (two sources feeding
 * one state), which is what binds their listeners. node-c takes everything (wildcard).
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const CLIENT2 = ip(11);
const SERVER = ip(20);
const SERVER2 = ip(21);
const SERVER3 = ip(22);
const WP = ip(30);
const LONELY = ip(40);
const NOBODY = ip(99);
const VIP_ECHO = ip(100);
const VIP_API = ip(101);
const VIP_WP = ip(102);
const VIP_GUARDED = ip(103);
const ECHO_HOST = 'echo.default.svc.cluster.local';
const WP_HOST = 'wp.default.svc.cluster.local';
const LONELY_UID = 'cluster1//v1/Pod/default/lonely';

const served: LocalConfigDoc = {
  workloads: [
    { name: 'client', ips: [CLIENT], node: 'node-a' },
    { name: 'client2', ips: [CLIENT2], node: 'node-a' },
    { name: 'server', ips: [SERVER], node: 'node-b' },
    { name: 'server2', ips: [SERVER2], node: 'node-c', services: { [`default/${ECHO_HOST}`]: { 8080: 8080 } } },
    { name: 'server3', ips: [SERVER3], node: 'node-c', services: { 'default/api.example.com': { 8080: 8080 } } },
    { name: 'wp', ips: [WP], node: 'node-c', services: { [`default/${WP_HOST}`]: { 15008: 15008 } } },
    { name: 'lonely', ips: [LONELY], node: 'node-c' },
  ],
  services: [
    { name: 'echo', hostname: ECHO_HOST, vip: VIP_ECHO, ports: { 8080: 8080 } },
    { name: 'api', hostname: 'api.example.com', vip: VIP_API, ports: { 8080: 8080 } },
    { name: 'wp', hostname: WP_HOST, vip: VIP_WP, ports: { 15008: 15008 } },
    { name: 'guarded', hostname: 'guarded.default.svc.cluster.local', vip: VIP_GUARDED, ports: { 8080: 8080 }, waypoint: { namespace: 'default', hostname: WP_HOST } },
  ],
};

let mesh: XdsMesh;
let a: XdsNode;
let b: XdsNode;
const echoes: EchoServer[] = [];

test.before(async () => {
  mesh = new XdsMesh(['node-a', 'node-b', 'node-c']);
  mesh.writeConfig(served);
  await mesh.startControlPlane();
  for (const host of [SERVER, SERVER2, SERVER3, WP]) echoes.push(await startEchoServer(host, 8080));
  const localA = join(mesh.dir, 'node-a-local.yaml');
  writeFileSync(localA, renderLocalConfig({ workloads: [{ name: 'client', ips: [CLIENT], node: 'node-a' }] }));
  const localB = join(mesh.dir, 'node-b-local.yaml');
  writeFileSync(localB, renderLocalConfig({ workloads: [{ name: 'server', ips: [SERVER], node: 'node-b' }] }));
  const onDemand = { XDS_ON_DEMAND: 'true', XDS_ON_DEMAND_TIMEOUT: '3s' };
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, LOCAL_XDS_PATH: localA, ...onDemand });
  b = await mesh.startNode('node-b', { LOCAL_XDS_PATH: localB, ...onDemand });
  await mesh.startNode('node-c');
});

test.after.always(async () => {
  await mesh?.close();
  for (const e of echoes) await e.close();
});

type StreamDump = { node: string; types: Record<string, { wildcard: boolean; names: string[] }> };

/** What node `n` subscribed to on the control plane, by name. */
function subscribed(n: string): StreamDump['types'] {
  return (mesh.cp!.xds.dump() as { streams: StreamDump[] }).streams.find((s) => s.node.includes(`ztunnel-${n}.`))!.types;
}

async function send(host: string, port: number, from = CLIENT): Promise<string> {
  const s = await socksConnect(a.listener('socks5'), { host, port }, from);
  try {
    return (await exchange(s, Buffer.from('hello'))).toString();
  } finally {
    s.destroy();
  }
}

/**
 * The access line of `n` with all these fields, waited for: each data-path thread writes its
 * own lines, so the newest line in the log need not be the newest connection's.
 */
async function accessLine(n: XdsNode, fields: Record<string, string>): Promise<Record<string, unknown> | undefined> {
  const find = (): Record<string, unknown> | undefined => n.logs.find((l) => l['scope'] === 'access' && l['msg'] === 'connection complete').find((l) => Object.entries(fields).every(([k, v]) => l[k] === v));
  await waitUntil(() => find() !== undefined, 5000, () => `an access line with ${JSON.stringify(fields)}`).catch(() => undefined);
  return find();
}

test.serial('on-demand: nothing pushed at start, readiness from Authorization only, local workloads from the file', (t) => {
  for (const n of [a, b]) {
    const d = n.xdsDump();
    t.is(d.types[ADDRESS_TYPE]!.resources, 0);
    t.truthy(d.types[AUTHORIZATION_TYPE]!.lastAck);
    t.true(n.app.runtime.readiness.isReady());
    t.false(subscribed(n.name)[ADDRESS_TYPE]!.wildcard);
    t.true(subscribed(n.name)[AUTHORIZATION_TYPE]!.wildcard);
  }
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: CLIENT }), 'from LOCAL_XDS_PATH');
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER }), undefined);
  t.is(b.app.state.findWorkloadByAddr({ network: '', ip: CLIENT }), undefined);
});

test.serial('outbound asks for an unknown destination by network/ip; inbound asks for the unknown peer, so both sides name the source workload', async (t) => {
  t.is(await send(SERVER, 8080), 'hello');
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
  t.deepEqual(subscribed('node-a')[ADDRESS_TYPE]!.names, [`/${SERVER}`]);
  t.truthy(await accessLine(a, { 'dst.workload': 'server', 'dst.hbone_addr': `${SERVER}:8080` }));
  // node-b knew only its own workload (from its file); the peer was fetched for telemetry.
  t.deepEqual(subscribed('node-b')[ADDRESS_TYPE]!.names, [`/${CLIENT}`]);
  t.truthy(b.app.state.findWorkloadByAddr({ network: '', ip: CLIENT }));
  t.truthy(await accessLine(b, { 'src.workload': 'client', 'dst.workload': 'server' }));
});

test.serial('an address the control plane does not know is answered as removed at once (no wait for the timeout)', async (t) => {
  const started = Date.now();
  const found = await a.app.xds!.demand(`/${NOBODY}`);
  t.true(found, 'the control plane answered');
  t.true(Date.now() - started < 2000, `answered in ${Date.now() - started}ms`);
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: NOBODY }), undefined);
  t.deepEqual(a.xdsDump().pendingOnDemand, []);
});

test.serial("outbound asks for the local client's own workload when the state does not know it", async (t) => {
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: CLIENT2 }), undefined);
  t.is(await send(SERVER, 8080, CLIENT2), 'hello');
  t.true(subscribed('node-a')[ADDRESS_TYPE]!.names.includes(`/${CLIENT2}`));
  t.truthy(await accessLine(a, { 'src.workload': 'client2', 'dst.workload': 'server' }));
  t.truthy(await accessLine(b, { 'src.workload': 'client2' }));
});

test.serial('a SOCKS5 Kubernetes hostname is asked for as namespace/hostname; the service comes with its endpoints', async (t) => {
  t.is(a.app.state.findServiceByHostname('default', ECHO_HOST), undefined);
  t.is(await send('echo.default', 8080), 'hello');
  t.true(subscribed('node-a')[ADDRESS_TYPE]!.names.includes(`default/${ECHO_HOST}`));
  t.truthy(a.app.state.findServiceByHostname('default', ECHO_HOST));
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER2 }), 'the endpoint arrived with its service');
  t.truthy(await accessLine(a, { 'dst.workload': 'server2', 'dst.service': ECHO_HOST }));
});

test.serial("a hostname that names no namespace (ServiceEntry-style) is asked for in the client's namespace", async (t) => {
  t.is(await send('api.example.com', 8080), 'hello');
  t.true(subscribed('node-a')[ADDRESS_TYPE]!.names.includes('default/api.example.com'));
  t.truthy(await accessLine(a, { 'dst.workload': 'server3' }));
});

test.serial('a hostname nobody serves fails with SOCKS_UNKNOWN_HOST once the control plane said so', async (t) => {
  const started = Date.now();
  const err = await t.throwsAsync(send('nothing.default', 8080), { instanceOf: SocksReplyError });
  t.true(Date.now() - started < 2500, `answered in ${Date.now() - started}ms, before the 3s on-demand timeout`);
  t.is((err as SocksReplyError).code, 4, 'host unreachable');
  const line = a.logs.find((l) => l['reason'] === 'SOCKS_UNKNOWN_HOST').at(-1)!;
  t.regex(String(line['error']), /nothing\.default:8080 is not a known service \(also asked the control plane\)/);
});

test.serial("a service whose waypoint is named by hostname: the waypoint is fetched on demand before routing, and traffic goes through it", async (t) => {
  t.is(a.app.state.findServiceByHostname('default', WP_HOST), undefined);
  t.is(await send(VIP_GUARDED, 8080), 'hello');
  const names = subscribed('node-a')[ADDRESS_TYPE]!.names;
  t.true(names.includes(`/${VIP_GUARDED}`) && names.includes(`default/${WP_HOST}`), JSON.stringify(names));
  t.truthy(await accessLine(a, { 'dst.workload': 'wp', 'dst.service': 'guarded.default.svc.cluster.local' }));
});

test.serial('a workload by uid (what an in-pod connection names its pod by) is fetched on demand', async (t) => {
  const lookup = new DemandLookup(a.app.state, (n) => a.app.xds!.demand(n));
  t.is(a.app.state.findWorkloadByUid(LONELY_UID), undefined);
  const w = await lookup.fetchWorkloadByUid(LONELY_UID);
  t.is(w?.name, 'lonely');
  t.true(subscribed('node-a')[ADDRESS_TYPE]!.names.includes(LONELY_UID));
  // Known now: no second request.
  const pushes = mesh.cp!.xds.stats.pushes;
  t.is((await lookup.fetchWorkloadByUid(LONELY_UID))?.name, 'lonely');
  t.is(mesh.cp!.xds.stats.pushes, pushes);
});

test.serial('a workload fetched on demand follows later pushes (it stays subscribed)', async (t) => {
  mesh.writeConfig({ ...served, workloads: served.workloads.map((w) => (w.name === 'server' ? { ...w, serviceAccount: 'renamed' } : w)) });
  const until = Date.now() + 5000;
  while (a.app.state.findWorkloadByAddr({ network: '', ip: SERVER })?.serviceAccount !== 'renamed' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER })?.serviceAccount, 'renamed');
});
