import test from 'ava';
import { buildOutboundRoute, pickServiceEndpoint } from '../../../src/state/route';
import { StateUpdater } from '../../../src/state/proxy-state';
import type { Service, Workload } from '../../../src/state/types';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { seeded, svc, wl } from './builders';

const KEY = 'shop/cart.shop.svc.cluster.local';
const VIP = '10.96.0.1';
const ep = (uid: string, over: Partial<Workload> = {}): Workload =>
  wl(uid, { namespace: 'shop', serviceAccount: uid, services: { [KEY]: { 80: 8080 } }, ...over });

function setup(eps: Workload[], over: Partial<Service> = {}): { u: StateUpdater; s: Service } {
  const s = svc('shop', 'cart.shop.svc.cluster.local', { ports: { 80: 9090 }, vips: [{ network: '', ip: VIP, prefixLen: 32 }], ...over });
  const u = new StateUpdater();
  u.source('test').replaceAll({ workloads: eps, services: [s], policies: [] });
  return { u, s };
}

test('picks an endpoint of the service: its IP, the translated port, the SANs to expect and its protocol', (t) => {
  const { u, s } = setup([ep('a', { workloadIps: ['10.0.0.1'] })], { subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/cart', 'spiffe://cluster.local/ns/shop/sa/a'] });
  const r = pickServiceEndpoint(u.view, s, 80, { src: null, network: '', family: 4, random: seeded(1) });
  if (!r.ok) return t.fail(r.message);
  t.is(r.workload.uid, 'a');
  t.is(r.service, s);
  t.is(r.ip, '10.0.0.1');
  t.is(r.targetPort, 8080, "the endpoint's own port map wins over the service target port");
  t.deepEqual(r.expectedIdentities, ['spiffe://cluster.local/ns/shop/sa/a', 'spiffe://cluster.local/ns/shop/sa/cart']);
  t.true(r.hbone);
  t.is(r.candidates, 1);
});

test('a plain TCP endpoint is reported as not HBONE; the service target port applies without an endpoint mapping', (t) => {
  const { u, s } = setup([wl('tcp', { namespace: 'shop', workloadIps: ['10.0.0.2'], protocol: 'TCP', services: { [KEY]: {} } })]);
  const r = pickServiceEndpoint(u.view, s, 80, { src: null, network: '', family: 4, random: seeded(1) });
  if (!r.ok) return t.fail(r.message);
  t.false(r.hbone);
  t.is(r.targetPort, 9090);
});

test('the service waypoint is not consulted: a waypoint forwarding after its own decision gets an endpoint', (t) => {
  const { u, s } = setup([ep('a', { workloadIps: ['10.0.0.1'] })], { waypoint: { kind: 'address', network: '', ip: '10.9.9.9', hboneMtlsPort: 15008 } });
  const r = pickServiceEndpoint(u.view, s, 80, { src: null, network: '', family: 4, random: seeded(1) });
  t.true(r.ok);
  t.is(r.ok && r.workload.uid, 'a');
});

test('Failover keeps the best locality rank for the source', (t) => {
  const zone = (z: string) => ({ region: 'r', zone: z, subzone: '' });
  const { u, s } = setup(
    [ep('near', { workloadIps: ['10.0.0.1'], locality: zone('z1') }), ep('far', { workloadIps: ['10.0.0.2'], locality: zone('z2'), capacity: 100 })],
    { loadBalancer: { mode: 'Failover', routingPreferences: ['Region', 'Zone'], healthPolicy: 'OnlyHealthy' } },
  );
  const src = wl('client', { locality: zone('z1') });
  for (let seed = 1; seed <= 20; seed++) {
    const r = pickServiceEndpoint(u.view, s, 80, { src, network: '', family: 4, random: seeded(seed) });
    t.is(r.ok && r.workload.uid, 'near');
  }
});

test('no healthy endpoint is NO_HEALTHY_UPSTREAM; an endpoint on another network is CROSS_NETWORK', (t) => {
  const sick = setup([ep('a', { workloadIps: ['10.0.0.1'], status: 'Unhealthy' })]);
  const r1 = pickServiceEndpoint(sick.u.view, sick.s, 80, { src: null, network: '', family: 4, random: seeded(1) });
  t.like(r1, { ok: false, reason: 'NO_HEALTHY_UPSTREAM' });
  t.regex(r1.ok ? '' : r1.message, /unhealthy/);
  const remote = setup([ep('a', { workloadIps: ['10.0.0.1'], network: 'remote' })]);
  const r2 = pickServiceEndpoint(remote.u.view, remote.s, 80, { src: null, network: '', family: 4, random: seeded(1) });
  t.like(r2, { ok: false, reason: 'CROSS_NETWORK' });
});

test('the outbound route to a VIP dials the endpoint pickServiceEndpoint picks with the same randomness', (t) => {
  const { u, s } = setup([ep('a', { workloadIps: ['10.0.0.1'] }), ep('b', { workloadIps: ['10.0.0.2'] }), ep('c', { workloadIps: ['10.0.0.3'] })]);
  const src = wl('client', { workloadIps: ['10.0.9.9'] });
  for (let seed = 1; seed <= 10; seed++) {
    const pick = pickServiceEndpoint(u.view, s, 80, { src, network: '', family: 4, random: seeded(seed) });
    const route = buildOutboundRoute(u.view, { srcWorkload: src, dst: makeSocketAddr(VIP, 80), network: '', random: seeded(seed) });
    if (!pick.ok || route.kind !== 'hbone') return t.fail(`pick ${JSON.stringify(pick.ok)} route ${route.kind}`);
    t.is(route.destWorkload.uid, pick.workload.uid);
    t.is(route.authority, `${pick.ip}:${pick.targetPort}`);
    t.deepEqual(route.expectedIdentities, pick.expectedIdentities);
  }
});
