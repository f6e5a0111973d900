import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from '../../../src/xds/proto';
import { exchange, startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { loopbackBlock } from '../../helpers/loopback';
import { renderLocalConfig, type LocalConfigDoc } from '../../helpers/node-harness';
import { socksConnect } from '../../helpers/socks-client';
import { XdsMesh, type XdsNode } from './harness';

/**
 * XDS_ON_DEMAND: the node subscribes to no Address at start ("*" subscribed and
 * unsubscribed at once) and asks for `network/ip` when a connection goes to an address
 * it does not know, waiting a bounded time. Its local workloads come from LOCAL_XDS_PATH
 * at the same time (two sources feeding one state).
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const NOBODY = ip(99);

const served: LocalConfigDoc = {
  workloads: [
    { name: 'client', ips: [CLIENT], node: 'node-a' },
    { name: 'server', ips: [SERVER], node: 'node-b' },
  ],
};

let mesh: XdsMesh;
let a: XdsNode;
let echo: EchoServer;

test.before(async () => {
  mesh = new XdsMesh(['node-a', 'node-b']);
  mesh.writeConfig(served);
  await mesh.startControlPlane();
  echo = await startEchoServer(SERVER, 8080);
  const local = join(mesh.dir, 'node-a-local.yaml');
  writeFileSync(local, renderLocalConfig({ workloads: [{ name: 'client', ips: [CLIENT], node: 'node-a' }] }));
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, XDS_ON_DEMAND: 'true', LOCAL_XDS_PATH: local, XDS_ON_DEMAND_TIMEOUT: '3s' });
  await mesh.startNode('node-b');
});

test.after.always(async () => {
  await mesh?.close();
  await echo?.close();
});

test.serial('on-demand: nothing pushed at start, readiness from Authorization only, local workloads from the file', (t) => {
  const d = a.xdsDump();
  t.is(d.types[ADDRESS_TYPE]!.resources, 0);
  t.truthy(d.types[AUTHORIZATION_TYPE]!.lastAck);
  t.true(a.app.runtime.readiness.isReady());
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: CLIENT }), 'from LOCAL_XDS_PATH');
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER }), undefined);
  const stream = (mesh.cp!.xds.dump() as { streams: { node: string; types: Record<string, { wildcard: boolean; names: string[] }> }[] }).streams.find((s) => s.node.includes('node-a'))!;
  t.false(stream.types[ADDRESS_TYPE]!.wildcard);
  t.true(stream.types[AUTHORIZATION_TYPE]!.wildcard);
});

test.serial('a connection to an unknown address asks the control plane for network/ip, then routes over HBONE', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.is((await exchange(s, Buffer.from('hello'))).toString(), 'hello');
  t.truthy(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER }));
  t.is(a.xdsDump().types[ADDRESS_TYPE]!.resources, 1);
  const stream = (mesh.cp!.xds.dump() as { streams: { node: string; types: Record<string, { names: string[] }> }[] }).streams.find((x) => x.node.includes('node-a'))!;
  t.deepEqual(stream.types[ADDRESS_TYPE]!.names, [`/${SERVER}`]);
  const line = a.logs.find((l) => l['scope'] === 'access' && l['msg'] === 'connection complete').at(-1)!;
  t.like(line, { 'dst.workload': 'server', 'dst.hbone_addr': `${SERVER}:8080` });
});

test.serial('an address the control plane does not know is answered as removed at once (no wait for the timeout)', async (t) => {
  const started = Date.now();
  const found = await a.app.xds!.client.demand(`/${NOBODY}`, 3000);
  t.true(found, 'the control plane answered');
  t.true(Date.now() - started < 2000, `answered in ${Date.now() - started}ms`);
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: NOBODY }), undefined);
  t.deepEqual(a.xdsDump().pendingOnDemand, []);
});

test.serial('a workload fetched on demand follows later pushes (it stays subscribed)', async (t) => {
  mesh.writeConfig({ workloads: [...served.workloads.slice(0, 1), { name: 'server', ips: [SERVER], node: 'node-b', serviceAccount: 'renamed' }] });
  const until = Date.now() + 5000;
  while (a.app.state.findWorkloadByAddr({ network: '', ip: SERVER })?.serviceAccount !== 'renamed' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.is(a.app.state.findWorkloadByAddr({ network: '', ip: SERVER })?.serviceAccount, 'renamed');
});
