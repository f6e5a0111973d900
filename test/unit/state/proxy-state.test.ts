import test from 'ava';
import { StateUpdater } from '../../../src/state/proxy-state';
import { stateDump } from '../../../src/state/dump';
import { ipInCidr } from '../../../src/util/ip';
import type { StateChange } from '../../../src/state/view';
import type { Authorization, Service, Workload } from '../../../src/state/types';
import { pol, seeded, svc, wl } from './builders';

test('workload lookups: by uid, by network/ip (canonical forms), HostNetwork not indexed by IP', (t) => {
  const u = new StateUpdater();
  u.source('test').applyBatch({
    workloads: {
      upsert: [
        wl('a', { workloadIps: ['10.0.0.1', 'fd00::1'], network: 'n1' }),
        wl('h', { workloadIps: ['192.168.1.1'], networkMode: 'HostNetwork' }),
      ],
    },
  });
  const v = u.view;
  t.is(v.findWorkloadByUid('a')?.uid, 'a');
  t.is(v.findWorkloadByAddr({ network: 'n1', ip: '10.0.0.1' })?.uid, 'a');
  t.is(v.findWorkloadByAddr({ network: 'n1', ip: '::ffff:10.0.0.1' })?.uid, 'a', 'v4-mapped');
  t.is(v.findWorkloadByAddr({ network: 'n1', ip: 'FD00:0::1' })?.uid, 'a', 'IPv6 spelling');
  t.is(v.findWorkloadByAddr({ network: '', ip: '10.0.0.1' }), undefined, 'network is part of the key');
  t.is(v.findWorkloadByAddr({ network: '', ip: '192.168.1.1' }), undefined, 'HostNetwork');
  t.is(v.findWorkloadByUid('h')?.uid, 'h');
  t.deepEqual(v.workloadsOnNode('node-a').map((w) => w.uid).sort(), ['a', 'h']);
  t.deepEqual(v.findWorkloadsByIdentity('cluster.local', 'default', 'default').map((w) => w.uid).sort(), ['a', 'h']);
});

test('service VIP lookup: exact, CIDR longest prefix, tie-break by client namespace then canonical, Namespace visibility', (t) => {
  const u = new StateUpdater();
  const vip = (ip: string, prefixLen = 32) => ({ network: '', ip, prefixLen });
  u.source('test').applyBatch({
    services: {
      upsert: [
        svc('b', 'shared.b', { vips: [vip('10.96.0.1')] }),
        svc('c', 'shared.c', { vips: [vip('10.96.0.1')], canonical: true }),
        svc('a', 'shared.a', { vips: [vip('10.96.0.1')] }),
        svc('x', 'wide', { vips: [vip('10.0.0.0', 8)] }),
        svc('x', 'narrow', { vips: [vip('10.1.0.0', 16)] }),
        svc('priv', 'private', { vips: [vip('192.168.96.2')], visibility: 'Namespace' }),
      ],
    },
  });
  const v = u.view;
  t.is(v.findServiceByVip({ network: '', ip: '10.96.0.1' }, 'a')?.hostname, 'shared.a', 'client namespace first');
  t.is(v.findServiceByVip({ network: '', ip: '10.96.0.1' }, 'zzz')?.hostname, 'shared.c', 'then canonical');
  t.is(v.findServiceByVip({ network: '', ip: '10.96.0.1' })?.hostname, 'shared.c');
  t.is(v.findServiceByVip({ network: '', ip: '10.1.2.3' })?.hostname, 'narrow', 'longest prefix');
  t.is(v.findServiceByVip({ network: '', ip: '10.2.2.3' })?.hostname, 'wide');
  t.is(v.findServiceByVip({ network: 'other', ip: '10.2.2.3' }), undefined);
  t.is(v.findServiceByVip({ network: '', ip: '192.168.96.2' }, 'priv')?.hostname, 'private');
  t.is(v.findServiceByVip({ network: '', ip: '192.168.96.2' }, 'other'), undefined, 'Namespace visibility hides it from other namespaces');
  t.is(v.findServiceByHostname('x', 'narrow')?.name, 'narrow');
});

test('endpoints come from Workload.services and may arrive before their Service', (t) => {
  const u = new StateUpdater();
  u.source('test').applyBatch({ workloads: { upsert: [wl('e1', { services: { 'ns/s': { 80: 8080 } } }), wl('e2', { services: { 'ns/s': { 80: 8080 }, 'ns/t': {} } })] } });
  const s = svc('ns', 's');
  t.deepEqual(u.view.endpointsOf(s).map((w) => w.uid), ['e1', 'e2']);
  u.source('test').applyBatch({ services: { upsert: [s] } });
  u.source('test').applyBatch({ workloads: { remove: ['e1'] } });
  t.deepEqual(u.view.endpointsOf(s).map((w) => w.uid), ['e2']);
});

test('policiesFor: namespace + global + selected by name, unknown names skipped, each once', (t) => {
  const u = new StateUpdater();
  u.source('test').applyBatch({
    policies: {
      upsert: [
        pol('istio-system', 'g', { scope: 'Global' }),
        pol('shop', 'ns1', { scope: 'Namespace' }),
        pol('ops', 'ns2', { scope: 'Namespace' }),
        pol('shop', 'sel', { scope: 'WorkloadSelector' }),
        pol('shop', 'other-sel', { scope: 'WorkloadSelector' }),
      ],
    },
  });
  const w = wl('w', { namespace: 'shop', authorizationPolicies: ['shop/sel', 'shop/ns1', 'shop/missing'] });
  t.deepEqual(u.view.policiesFor(w).map((p) => `${p.namespace}/${p.name}`), ['shop/ns1', 'istio-system/g', 'shop/sel']);
});

test('StateChange: added/removed/updated, version bump, listener sees the new state, no-op batches emit nothing', (t) => {
  const u = new StateUpdater();
  const seen: { change: StateChange; visible: string | undefined }[] = [];
  const off = u.view.onChange((c) => seen.push({ change: c, visible: u.view.findWorkloadByAddr({ network: '', ip: '10.0.0.2' })?.uid }));
  u.source('test').applyBatch({ workloads: { upsert: [wl('a', { workloadIps: ['10.0.0.1'] }), wl('b')] } });
  t.is(u.view.version, 1);
  const c2 = u.source('test').applyBatch({ workloads: { upsert: [wl('a', { workloadIps: ['10.0.0.2'] })], remove: ['b'] }, policies: { upsert: [pol('n', 'p')] } });
  t.deepEqual(c2 && [c2.workloadsAdded.length, c2.workloadsRemoved.map((w) => w.uid), c2.workloadsUpdated.map((w) => w.uid), c2.servicesChanged, c2.policiesChanged], [0, ['b'], ['a'], false, true]);
  t.is(seen[1]?.visible, 'a', 'the listener runs after the batch is in place');
  t.is(u.view.findWorkloadByAddr({ network: '', ip: '10.0.0.1' }), undefined, 'old IP unindexed');
  t.is(u.source('test').applyBatch({ workloads: { upsert: [wl('a', { workloadIps: ['10.0.0.2'] })] } }), null, 'identical content is a no-op');
  t.is(u.view.version, 2);
  off();
  u.source('test').applyBatch({ workloads: { remove: ['a'] } });
  t.is(seen.length, 2, 'unsubscribed');
});

test('stateDump has ztunnel\'s config_dump shape and is JSON-serialisable', (t) => {
  const u = new StateUpdater();
  u.source('test').replaceAll({ workloads: [wl('a', { workloadIps: ['10.0.0.1'] })], services: [svc('n', 's')], policies: [pol('n', 'p')] });
  const d = JSON.parse(JSON.stringify(stateDump(u.view))) as { workloads: { uid: string }[]; services: { hostname: string }[]; policies: { name: string }[]; stateVersion: number };
  t.deepEqual([d.workloads.map((w) => w.uid), d.services.map((s) => s.hostname), d.policies.map((p) => p.name), d.stateVersion], [['a'], ['s'], ['p'], 1]);
});

test('a throwing listener does not break the writer or other listeners', (t) => {
  const u = new StateUpdater();
  let got = 0;
  u.view.onChange(() => {
    throw new Error('boom');
  });
  u.view.onChange(() => got++);
  t.notThrows(() => u.source('test').applyBatch({ workloads: { upsert: [wl('a')] } }));
  t.is(got, 1);
});

test('replaceAll removes everything not in the new config', (t) => {
  const u = new StateUpdater();
  u.source('test').replaceAll({ workloads: [wl('a'), wl('b')], services: [svc('n', 's')], policies: [pol('n', 'p')] });
  const c = u.source('test').replaceAll({ workloads: [wl('b')], services: [], policies: [pol('n', 'p')] });
  t.deepEqual(c?.workloadsRemoved.map((w) => w.uid), ['a']);
  t.true(c?.servicesChanged);
  t.false(c?.policiesChanged);
  t.deepEqual(u.view.allWorkloads().map((w) => w.uid), ['b']);
});

/** Random add/update/remove sequences; after each batch every index equals a from-scratch rebuild. */
test('indexes stay consistent across 300 random batches (compared to a rebuild from scratch)', (t) => {
  const rnd = seeded(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const ips = Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? `fd00::${i + 1}` : `10.0.0.${i + 1}`));
  const nets = ['', 'n2'];
  const nodes = ['node-a', 'node-b', ''];
  const svcKeys = ['ns1/s1', 'ns1/s2', 'ns2/s1'];
  const randWl = (uid: string): Workload =>
    wl(uid, {
      namespace: pick(['ns1', 'ns2']),
      serviceAccount: pick(['sa1', 'sa2']),
      network: pick(nets),
      node: pick(nodes),
      networkMode: rnd() < 0.15 ? 'HostNetwork' : 'Standard',
      workloadIps: Array.from(new Set([pick(ips), ...(rnd() < 0.4 ? [pick(ips)] : [])])),
      services: Object.fromEntries(svcKeys.filter(() => rnd() < 0.4).map((k) => [k, { 80: 8080 }])),
    });
  const randSvc = (key: string): Service => {
    const [ns, host] = key.split('/') as [string, string];
    return svc(ns, host, { vips: [{ network: pick(nets), ip: pick(['10.96.0.1', '10.96.0.2', '10.0.0.0']), prefixLen: pick([32, 32, 16, 8]) }], canonical: rnd() < 0.5 });
  };
  const randPol = (key: string): Authorization => {
    const [ns, name] = key.split('/') as [string, string];
    return pol(ns, name, { scope: pick(['Global', 'Namespace', 'WorkloadSelector'] as const) });
  };
  const uids = Array.from({ length: 15 }, (_, i) => `w${i}`);
  const polKeys = ['ns1/p1', 'ns1/p2', 'ns2/p1', 'istio-system/g'];
  const u = new StateUpdater();
  let lastVersion = 0;
  for (let step = 0; step < 300; step++) {
    const n = 1 + Math.floor(rnd() * 4);
    const batch = {
      workloads: { upsert: Array.from({ length: n }, () => randWl(pick(uids))), remove: rnd() < 0.5 ? [pick(uids)] : [] },
      services: { upsert: rnd() < 0.5 ? [randSvc(pick(svcKeys))] : [], remove: rnd() < 0.2 ? [pick(svcKeys)] : [] },
      policies: { upsert: rnd() < 0.4 ? [randPol(pick(polKeys))] : [], remove: rnd() < 0.2 ? [pick(polKeys)] : [] },
    };
    // Later upserts of the same uid win, as within any batch.
    const change = u.source('test').applyBatch(batch);
    if (change) {
      t.is(change.version, lastVersion + 1);
      lastVersion = change.version;
    }
    const rebuilt = new StateUpdater();
    rebuilt.source('test').replaceAll({ workloads: u.view.allWorkloads(), services: u.view.allServices(), policies: u.view.allPolicies() });
    if (JSON.stringify(u.indexSnapshot()) !== JSON.stringify(rebuilt.indexSnapshot())) {
      t.deepEqual(u.indexSnapshot(), rebuilt.indexSnapshot(), `step ${step}`);
      return;
    }
    // Spot-check the public lookups against a linear scan.
    for (const ip of ips) {
      for (const network of nets) {
        const expect = u.view.allWorkloads().filter((w) => w.networkMode !== 'HostNetwork' && w.network === network && w.workloadIps.includes(ip));
        const got = u.view.findWorkloadByAddr({ network, ip });
        if (expect.length === 0) t.is(got, undefined);
        else t.true(!!got && expect.some((w) => w.uid === got.uid));
      }
    }
    for (const ip of ['10.96.0.1', '10.96.0.2', '10.0.0.0', '10.0.5.5']) {
      for (const network of nets) {
        const got = u.view.findServiceByVip({ network, ip });
        const exact = u.view.allServices().filter((sv) => sv.vips.some((v) => v.network === network && v.ip === ip && v.prefixLen === 32));
        if (exact.length > 0) t.true(!!got && exact.includes(got), `exact VIP ${network}/${ip}`);
        else if (!got) t.false(u.view.allServices().some((sv) => sv.vips.some((v) => v.network === network && v.prefixLen < 32 && ipInCidr(ip, v))), `no CIDR holds ${network}/${ip}`);
        else t.true(got.vips.some((v) => v.network === network && ipInCidr(ip, v)));
      }
    }
  }
  t.true(lastVersion > 100, `versions applied: ${lastVersion}`);
});

test('lookup cost with 10k workloads and 2k services stays in microseconds', (t) => {
  const u = new StateUpdater();
  const ws: Workload[] = [];
  for (let i = 0; i < 10_000; i++) ws.push(wl(`w${i}`, { namespace: `ns${i % 50}`, workloadIps: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], services: { [`ns${i % 50}/s${i % 2000}`]: { 80: 8080 } } }));
  const ss: Service[] = [];
  for (let i = 0; i < 2000; i++) ss.push(svc(`ns${i % 50}`, `s${i}`, { vips: [{ network: '', ip: `10.96.${(i >> 8) & 255}.${i & 255}`, prefixLen: 32 }], ports: { 80: 8080 } }));
  const t0 = process.hrtime.bigint();
  u.source('test').replaceAll({ workloads: ws, services: ss, policies: [] });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const N = 100_000;
  const t1 = process.hrtime.bigint();
  let hits = 0;
  for (let i = 0; i < N; i++) {
    const k = i % 10_000;
    if (u.view.findWorkloadByAddr({ network: '', ip: `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}` })) hits++;
    if (u.view.findServiceByVip({ network: '', ip: `10.96.${(k % 2000 >> 8) & 255}.${k % 2000 & 255}` }, 'ns1')) hits++;
  }
  const perLookupNs = Number(process.hrtime.bigint() - t1) / (2 * N);
  t.is(hits, 2 * N);
  t.log(`10k workloads + 2k services: load ${loadMs.toFixed(1)} ms, lookup ${(perLookupNs / 1000).toFixed(2)} µs (incl. IP canonicalisation)`);
  t.true(perLookupNs < 50_000, `${perLookupNs} ns per lookup`);
});
