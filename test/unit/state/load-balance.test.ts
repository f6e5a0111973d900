import test from 'ava';
import { loadBalance, targetPortFor, weightedPick } from '../../../src/state/load-balance';
import { StateUpdater } from '../../../src/state/proxy-state';
import type { Service, Workload } from '../../../src/state/types';
import { seeded, svc, wl } from './builders';

const KEY = 'shop/cart';
const ep = (uid: string, over: Partial<Workload> = {}): Workload => wl(uid, { namespace: 'shop', services: { [KEY]: { 80: 8080 } }, ...over });

function setup(eps: Workload[], over: Partial<Service> = {}): { u: StateUpdater; s: Service } {
  const s = svc('shop', 'cart', { ports: { 80: 8080 }, vips: [{ network: '', ip: '10.96.0.1', prefixLen: 32 }], ...over });
  const u = new StateUpdater();
  u.source('test').replaceAll({ workloads: eps, services: [s], policies: [] });
  return { u, s };
}

function distribution(u: StateUpdater, s: Service, src: Workload | null, n: number, seed: number): Map<string, number> {
  const rnd = seeded(seed);
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = loadBalance(u.view, s, 80, { src, family: 4, random: rnd });
    const k = r.ok ? r.endpoint.workload.uid : `error: ${r.why}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

test('capacity-weighted random: 10000 seeded picks follow capacities 1:2:7 within 1.5 points', (t) => {
  const { u, s } = setup([ep('c1', { workloadIps: ['10.0.0.1'], capacity: 1 }), ep('c2', { workloadIps: ['10.0.0.2'], capacity: 2 }), ep('c7', { workloadIps: ['10.0.0.7'], capacity: 7 })]);
  const N = 10_000;
  const d = distribution(u, s, null, N, 7);
  const share = (k: string): number => ((d.get(k) ?? 0) / N) * 100;
  t.log(`shares: c1=${share('c1').toFixed(2)}% c2=${share('c2').toFixed(2)}% c7=${share('c7').toFixed(2)}% (expected 10/20/70)`);
  t.true(Math.abs(share('c1') - 10) < 1.5);
  t.true(Math.abs(share('c2') - 20) < 1.5);
  t.true(Math.abs(share('c7') - 70) < 1.5);
});

test('capacity 0 is never picked; all-zero capacity means no upstream', (t) => {
  const { u, s } = setup([ep('z', { workloadIps: ['10.0.0.1'], capacity: 0 }), ep('one', { workloadIps: ['10.0.0.2'] })]);
  t.deepEqual([...distribution(u, s, null, 500, 1).keys()], ['one']);
  const z = setup([ep('z', { workloadIps: ['10.0.0.1'], capacity: 0 })]);
  const r = loadBalance(z.u.view, z.s, 80, { src: null, family: 4, random: seeded(1) });
  t.false(r.ok);
});

const loc = (region: string, zone: string) => ({ region, zone, subzone: '' });
const src = wl('src', { namespace: 'shop', locality: loc('eu', 'eu-1a'), node: 'n1' });

test('Failover picks the same zone while any exists, then the same region, then anything', (t) => {
  const a = ep('same-zone', { workloadIps: ['10.0.0.1'], locality: loc('eu', 'eu-1a') });
  const a2 = ep('same-zone-2', { workloadIps: ['10.0.0.4'], locality: loc('eu', 'eu-1a') });
  const b = ep('same-region', { workloadIps: ['10.0.0.2'], locality: loc('eu', 'eu-1b') });
  const c = ep('far', { workloadIps: ['10.0.0.3'], locality: loc('us', 'us-1a') });
  const lb = { routingPreferences: ['Region', 'Zone'] as const, mode: 'Failover' as const, healthPolicy: 'OnlyHealthy' as const };
  const all = setup([a, a2, b, c], { loadBalancer: lb });
  const d1 = distribution(all.u, all.s, src, 2000, 3);
  t.deepEqual([...d1.keys()].sort(), ['same-zone', 'same-zone-2'], 'only same-zone endpoints while they exist');
  t.true((d1.get('same-zone') ?? 0) > 800 && (d1.get('same-zone-2') ?? 0) > 800, 'spread across the same-zone pair');
  // The same-zone endpoints go unhealthy: fail over to the same region.
  all.u.source('test').applyBatch({ workloads: { upsert: [{ ...a, status: 'Unhealthy' }, { ...a2, status: 'Unhealthy' }] } });
  t.deepEqual([...distribution(all.u, all.s, src, 500, 4).keys()], ['same-region']);
  all.u.source('test').applyBatch({ workloads: { remove: ['same-region'] } });
  t.deepEqual([...distribution(all.u, all.s, src, 500, 5).keys()], ['far']);
});

test('Strict drops endpoints that do not match every preference', (t) => {
  const lb = { routingPreferences: ['Region', 'Zone'] as const, mode: 'Strict' as const, healthPolicy: 'OnlyHealthy' as const };
  const { u, s } = setup([ep('same-zone', { workloadIps: ['10.0.0.1'], locality: loc('eu', 'eu-1a') }), ep('same-region', { workloadIps: ['10.0.0.2'], locality: loc('eu', 'eu-1b') })], { loadBalancer: lb });
  t.deepEqual([...distribution(u, s, src, 500, 6).keys()], ['same-zone']);
  u.source('test').applyBatch({ workloads: { remove: ['same-zone'] } });
  const r = loadBalance(u.view, s, 80, { src, family: 4, random: seeded(1) });
  t.deepEqual(r, { ok: false, why: 'service shop/cart: Strict locality (Region, Zone) leaves no endpoint for this source' });
});

test('Subzone, Node, Cluster and Network scopes rank too', (t) => {
  const me = wl('me', { locality: { region: 'eu', zone: 'z', subzone: 'sz1' }, node: 'n1', clusterId: 'c1', network: 'net1' });
  const cases: [string, Partial<Workload>, Partial<Workload>][] = [
    ['Subzone', { locality: { region: 'eu', zone: 'z', subzone: 'sz1' } }, { locality: { region: 'eu', zone: 'z', subzone: 'sz2' } }],
    ['Node', { node: 'n1' }, { node: 'n2' }],
    ['Cluster', { clusterId: 'c1' }, { clusterId: 'c2' }],
    ['Network', { network: 'net1' }, { network: 'net2' }],
  ];
  for (const [scope, near, far] of cases) {
    const lb = { routingPreferences: [scope as 'Node'], mode: 'Failover' as const, healthPolicy: 'OnlyHealthy' as const };
    const { u, s } = setup([ep('near', { workloadIps: ['10.0.0.1'], ...near }), ep('far', { workloadIps: ['10.0.0.2'], ...far })], { loadBalancer: lb });
    t.deepEqual([...distribution(u, s, me, 300, 8).keys()], ['near'], scope);
  }
});

test('unhealthy endpoints are dropped unless healthPolicy AllowAll', (t) => {
  const eps = [ep('sick', { workloadIps: ['10.0.0.1'], status: 'Unhealthy' })];
  const only = setup(eps);
  t.deepEqual(loadBalance(only.u.view, only.s, 80, { src: null, family: 4, random: seeded(1) }), { ok: false, why: 'service shop/cart: all 1 endpoints are unhealthy' });
  const all = setup(eps, { loadBalancer: { routingPreferences: [], mode: 'Standard', healthPolicy: 'AllowAll' } });
  const r = loadBalance(all.u.view, all.s, 80, { src: null, family: 4, random: seeded(1) });
  t.true(r.ok && r.endpoint.workload.uid === 'sick');
});

test('the service port must exist; the target port comes from the endpoint, then the service, then app tunnel', (t) => {
  const { u, s } = setup([ep('e', { workloadIps: ['10.0.0.1'], services: { [KEY]: { 80: 9000 } } })], { ports: { 80: 8080, 81: 0 } });
  t.deepEqual(loadBalance(u.view, s, 443, { src: null, family: 4, random: seeded(1) }), { ok: false, why: 'service shop/cart has no port 443' });
  const r = loadBalance(u.view, s, 80, { src: null, family: 4, random: seeded(1) });
  t.true(r.ok && r.endpoint.targetPort === 9000, 'endpoint mapping wins');
  const w = wl('x', { services: { [KEY]: {} } });
  t.is(targetPortFor(w, s, 80), 8080, 'service target port next');
  t.is(targetPortFor(w, s, 81), null, 'target 0 with no endpoint mapping: unusable');
  t.is(targetPortFor({ ...w, applicationTunnel: { protocol: 'PROXY', port: 15088 } }, s, 81), 81, 'app tunnel keeps the service port');
  t.is(targetPortFor({ ...w, applicationTunnel: { protocol: 'NONE', port: null } }, s, 81), null, 'an app tunnel without a port does not');
  // Service target port 0: an endpoint without its own mapping is skipped.
  const zero = setup([ep('m', { workloadIps: ['10.0.0.1'], services: { [KEY]: { 81: 7000 } } }), ep('n', { workloadIps: ['10.0.0.2'], services: { [KEY]: {} } })], { ports: { 81: 0 } });
  for (let i = 0; i < 20; i++) {
    const z = loadBalance(zero.u.view, zero.s, 81, { src: null, family: 4, random: seeded(i) });
    t.true(z.ok && z.endpoint.workload.uid === 'm' && z.endpoint.targetPort === 7000);
  }
});

test('waypoint mode: an undeclared HBONE port is only usable through an application tunnel', (t) => {
  const wp = (uid: string, tunnel: boolean) => wl(uid, { namespace: 'shop', workloadIps: [tunnel ? '10.0.9.1' : '10.0.9.2'], services: { 'shop/wp': {} }, applicationTunnel: tunnel ? { protocol: 'PROXY', port: 15088 } : null });
  const s = svc('shop', 'wp', { ports: {} });
  const u = new StateUpdater();
  u.source('test').replaceAll({ workloads: [wp('tunnel', true), wp('plain', false)], services: [s], policies: [] });
  for (let i = 0; i < 20; i++) {
    const r = loadBalance(u.view, s, 15008, { src: null, family: 4, random: seeded(i), waypointMode: true });
    t.true(r.ok && r.endpoint.workload.uid === 'tunnel' && r.endpoint.targetPort === 15008);
  }
  t.false(loadBalance(u.view, s, 15008, { src: null, family: 4, random: seeded(1) }).ok, 'standard mode requires the declared port');
});

test('IP family: the request family is preferred, ipFamilies restricts', (t) => {
  const dual = ep('dual', { workloadIps: ['10.0.0.1', 'fd00::1'] });
  const a = setup([dual]);
  const r6 = loadBalance(a.u.view, a.s, 80, { src: null, family: 6, random: seeded(1) });
  t.true(r6.ok && r6.endpoint.ip === 'fd00::1');
  const v4only = setup([dual], { ipFamilies: 'IPv4' });
  const r = loadBalance(v4only.u.view, v4only.s, 80, { src: null, family: 6, random: seeded(1) });
  t.true(r.ok && r.endpoint.ip === '10.0.0.1');
  const none = setup([ep('v4', { workloadIps: ['10.0.0.1'] })], { ipFamilies: 'IPv6' });
  t.false(loadBalance(none.u.view, none.s, 80, { src: null, family: 6, random: seeded(1) }).ok);
});

test('weightedPick follows weights and handles the random()→1 edge', (t) => {
  const items = [
    { id: 'a', w: 1 },
    { id: 'b', w: 3 },
  ];
  t.is(weightedPick(items, (x) => x.w, () => 0)?.id, 'a');
  t.is(weightedPick(items, (x) => x.w, () => 0.2499)?.id, 'a');
  t.is(weightedPick(items, (x) => x.w, () => 0.25)?.id, 'b');
  t.is(weightedPick(items, (x) => x.w, () => 0.9999999999)?.id, 'b');
  t.is(weightedPick([], () => 1, () => 0.5), undefined);
});
