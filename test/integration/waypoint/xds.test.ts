import test from 'ava';
import { WaypointMesh, get, startHttpApp } from './harness';
import { waitUntil } from '../../helpers/node-harness';

/**
 * The waypoint on delta xDS (XDS_ADDRESS, no local file): it learns workloads, services and
 * policies from the control plane exactly as the node proxies do, serves traffic through
 * client → node-a → waypoint → node-b → app, and picks up a Service added later without a
 * restart.
 */
const m = new WaypointMesh();
const LATE_VIP = m.ip(104);
const LATE_APP = m.ip(24);

test.before(async () => {
  m.track(await startHttpApp(m.V1, 8080, 'v1'));
  m.track(await startHttpApp(m.V2, 8080, 'v2'));
  m.track(await startHttpApp(LATE_APP, 8080, 'late'));
  await m.start('', {}, {}, { xds: true });
});
test.after.always(() => m.close());

test.serial('the waypoint subscribes over xDS with its own identity and serves from that state', async (t) => {
  t.truthy(m.wp.xds, 'XDS_ADDRESS makes the waypoint an xDS client');
  const sub = m.cpLogs.find((l) => l['msg'] === 'xDS subscription');
  t.true(sub.length >= 2, 'Address and Authorization subscriptions');
  t.true(sub.every((l) => l['caller'] === 'default/waypoint'));
  t.truthy(m.wp.state.findServiceByVip({ network: '', ip: m.VIP }), 'services from xDS');
  t.truthy(m.wp.state.findWorkloadByAddr({ network: '', ip: m.V1 }), 'workloads from xDS');
  t.true(m.wp.state.allPolicies().some((p) => p.name === 'only-waypoint'), 'policies from xDS');
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const r = await get(fwd, '/via-xds');
  t.is(r.status, 200);
  t.true(['v1', 'v2'].includes(r.body.app));
  const rec = m.requestLogs().find((l) => l['path'] === '/via-xds');
  t.like(rec, { response_code: 200, 'dst.service': 'server.default.svc.cluster.local', 'src.identity': 'spiffe://cluster.local/ns/default/sa/client' });
});

test.serial('a Service added to the control plane later is pushed to the waypoint and served without a restart', async (t) => {
  t.falsy(m.wp.state.findServiceByVip({ network: '', ip: LATE_VIP }));
  m.mesh.writeConfig(
    m.doc({
      workloads: [{ name: 'late-app', ips: [LATE_APP], node: 'node-b', serviceAccount: 'server', authorizationPolicies: ['default/only-waypoint'], services: { 'default/late.default.svc.cluster.local': { 80: 8080 } } }],
      services: [{ name: 'late', hostname: 'late.default.svc.cluster.local', vip: LATE_VIP, ports: { 80: 8080 }, waypoint: m.WP }],
    }),
  );
  await waitUntil(() => m.wp.state.findServiceByVip({ network: '', ip: LATE_VIP }) !== undefined && m.a.app.state.findServiceByVip({ network: '', ip: LATE_VIP }) !== undefined, 10_000, () => 'the new Service reached the waypoint (xDS) and node-a');
  const fwd = await m.forwarder({ host: LATE_VIP, port: 80 });
  const r = await get(fwd, '/late', { host: 'late.default.svc.cluster.local' });
  t.is(r.status, 200);
  t.is(r.body.app, 'late');
  // The app sees the waypoint's identity: the request really went through it.
  const rec = m.requestLogs().find((l) => l['path'] === '/late');
  t.like(rec, { response_code: 200, 'dst.service': 'late.default.svc.cluster.local', 'dst.workload': 'late-app' });
});
