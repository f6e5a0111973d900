import test from 'ava';
import { reauthorizationScope } from '../../../src/policy/reauthorize';
import { peersToEvict } from '../../../src/state/change';
import { StateUpdater } from '../../../src/state/proxy-state';
import type { Workload } from '../../../src/state/types';
import type { StateChange } from '../../../src/state/view';
import { pol, wl } from '../state/builders';

function setup(): { u: StateUpdater; write: (b: Parameters<ReturnType<StateUpdater['source']>['applyBatch']>[0]) => StateChange } {
  const u = new StateUpdater();
  u.source('s').applyBatch({
    workloads: { upsert: [wl('a1', { namespace: 'a' }), wl('b1', { namespace: 'b' }), wl('b2', { namespace: 'b', authorizationPolicies: ['a/listed'] })] },
    policies: { upsert: [pol('a', 'p'), pol('a', 'listed', { scope: 'WorkloadSelector' })] },
  });
  return { u, write: (b) => u.source('s').applyBatch(b) as StateChange };
}

const selected = (u: StateUpdater, scope: ((w: Workload) => boolean) | null): string[] => (scope === null ? [] : u.view.allWorkloads().filter(scope).map((w) => w.uid));

test('a namespace policy re-decides its namespace only; a listed policy the workloads listing it; a global one everything', (t) => {
  const { u, write } = setup();
  t.deepEqual(selected(u, reauthorizationScope(write({ policies: { upsert: [pol('a', 'p', { action: 'Deny' })] } }), u.view)), ['a1']);
  t.deepEqual(selected(u, reauthorizationScope(write({ policies: { upsert: [pol('a', 'listed', { scope: 'WorkloadSelector', action: 'Deny' })] } }), u.view)), ['b2']);
  t.deepEqual(selected(u, reauthorizationScope(write({ policies: { upsert: [pol('istio-system', 'g', { scope: 'Global' })] } }), u.view)), ['a1', 'b1', 'b2']);
  // Removing it re-decides everything too (its scope comes from the version that went).
  t.deepEqual(selected(u, reauthorizationScope(write({ policies: { remove: ['istio-system/g'] } }), u.view)), ['a1', 'b1', 'b2']);
});

test('a workload whose selection changed is re-decided; other workload updates re-decide nothing', (t) => {
  const { u, write } = setup();
  t.deepEqual(selected(u, reauthorizationScope(write({ workloads: { upsert: [wl('b1', { namespace: 'b', authorizationPolicies: ['a/listed'] })] } }), u.view)), ['b1']);
  t.is(reauthorizationScope(write({ workloads: { upsert: [wl('a1', { namespace: 'a', status: 'Unhealthy' })] } }), u.view), null);
});

test('pooled sessions are evicted for removed peers and peers whose identity or address moved, not for other updates', (t) => {
  const { write } = setup();
  t.deepEqual(peersToEvict(write({ workloads: { upsert: [wl('a1', { namespace: 'a', canonicalRevision: 'v2' })] } })), []);
  t.deepEqual(peersToEvict(write({ workloads: { upsert: [wl('a1', { namespace: 'a', canonicalRevision: 'v2', workloadIps: ['10.0.0.9'] })] } })), ['a1']);
  t.deepEqual(peersToEvict(write({ workloads: { upsert: [wl('b1', { namespace: 'b', serviceAccount: 'other' })], remove: ['b2'] } })), ['b2', 'b1']);
});
