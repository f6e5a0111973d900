import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createRegistry } from '../../../src/metrics/registry';
import { createStateMetrics } from '../../../src/metrics/state-metrics';
import { LocalConfigSource } from '../../../src/state/local-source';
import { StateUpdater } from '../../../src/state/proxy-state';
import { pol, svc, wl } from './builders';

const uids = (u: StateUpdater): string[] => u.view.allWorkloads().map((w) => w.uid).sort();

test('two sources each replace only what they hold', (t) => {
  const u = new StateUpdater();
  const file = u.source('file');
  const xds = u.source('xds');
  file.replaceAll({ workloads: [wl('f1'), wl('f2')], services: [svc('n', 'fs')], policies: [pol('n', 'fp')] });
  xds.replaceAll({ workloads: [wl('x1')], services: [svc('n', 'xs')], policies: [pol('n', 'xp')] });
  t.deepEqual(uids(u), ['f1', 'f2', 'x1']);

  const c = file.replaceAll({ workloads: [wl('f2')], services: [], policies: [] });
  t.deepEqual(c?.workloadsRemoved.map((w) => w.uid), ['f1']);
  t.deepEqual(uids(u), ['f2', 'x1'], "the file's reload left the other source's workload alone");
  t.deepEqual(u.view.allServices().map((s) => s.hostname), ['xs']);
  t.deepEqual(u.view.allPolicies().map((p) => p.name), ['xp']);

  xds.applyBatch({ workloads: { remove: ['x1', 'f2'] } });
  t.deepEqual(uids(u), ['f2'], 'a source cannot remove what another source holds');
  xds.replaceAll({ workloads: [], services: [], policies: [] });
  t.deepEqual([uids(u), u.view.allServices().length, u.view.allPolicies().length], [['f2'], 0, 0]);
});

test('the same resource from two sources: latest write in force, removal falls back to the other copy', (t) => {
  const logs = new LogCollector();
  const u = new StateUpdater(createLogger({ level: 'info', format: 'json', destination: logs }));
  const a = u.source('a');
  const b = u.source('b');
  a.applyBatch({ workloads: { upsert: [wl('w', { workloadIps: ['10.0.0.1'] })] } });
  b.applyBatch({ workloads: { upsert: [wl('w', { workloadIps: ['10.0.0.2'] })] } });
  t.deepEqual(u.view.findWorkloadByUid('w')?.workloadIps, ['10.0.0.2']);
  t.falsy(u.view.findWorkloadByAddr({ network: '', ip: '10.0.0.1' }), 'the older copy is not indexed');
  t.deepEqual(u.holders('workloads', 'w'), ['a', 'b']);
  t.like(logs.find((l) => l['kind'] === 'workloads')[0], { source: 'b', alsoHeldBy: ['a'], count: 1, resources: ['w'] }, 'the overlap is reported');

  a.applyBatch({ workloads: { upsert: [wl('w', { workloadIps: ['10.0.0.3'] })] } });
  t.deepEqual(u.view.findWorkloadByUid('w')?.workloadIps, ['10.0.0.3'], 'a newer write by the first source wins again');

  const c = a.applyBatch({ workloads: { remove: ['w'] } });
  t.deepEqual(c?.workloadsUpdated.map((w) => w.workloadIps), [['10.0.0.2']], "removing from one source restores the other's copy");
  t.is(u.view.findWorkloadByAddr({ network: '', ip: '10.0.0.2' })?.uid, 'w');

  const gone = b.replaceAll({ workloads: [], services: [], policies: [] });
  t.deepEqual(gone?.workloadsRemoved.map((w) => w.uid), ['w'], 'gone once no source holds it');
  t.deepEqual(u.holders('workloads', 'w'), []);
  const rebuilt = new StateUpdater();
  t.deepEqual(u.indexSnapshot(), rebuilt.indexSnapshot(), 'no index entry left behind');
});

test('a local file and a second source feed one state; reloads and the other source never clobber each other', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ztunnel-ts-sources-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const logger = createLogger({ level: 'warn', format: 'json', destination: new LogCollector() });
  const updater = new StateUpdater(logger);
  const metrics = createStateMetrics(createRegistry({ component: 'test', processMetrics: false }), updater.view);
  const file = path.join(dir, 'a.yaml');
  const second = path.join(dir, 'b.yaml');
  const doc = (...ws: [string, string][]): string => `workloads:\n${ws.map(([uid, ip]) => `- {uid: ${uid}, name: ${uid}, namespace: ns, workloadIps: ["${ip}"]}\n`).join('')}`;
  writeFileSync(file, doc(['file-1', '10.1.0.1'], ['file-2', '10.1.0.2']));
  writeFileSync(second, doc(['other-file', '10.3.0.1']));
  const src = new LocalConfigSource({ path: file, inline: null, updater, logger, metrics, debounceMs: 20 });
  const src2 = new LocalConfigSource({ path: second, inline: null, updater, logger, metrics, debounceMs: 20 });
  t.teardown(() => (src.destroy(), src2.destroy()));
  await src.start();
  await src2.start();
  const stream = updater.source('xds');
  stream.replaceAll({ workloads: [wl('pushed-1', { workloadIps: ['10.2.0.1'] }), wl('pushed-2')], services: [svc('ns', 'pushed.ns.svc')], policies: [] });
  t.deepEqual(uids(updater), ['file-1', 'file-2', 'other-file', 'pushed-1', 'pushed-2']);

  // The file is rewritten without file-1: only file-1 goes.
  writeFileSync(file, doc(['file-2', '10.1.0.2']));
  const end = Date.now() + 5000;
  while (updater.view.findWorkloadByUid('file-1') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(uids(updater), ['file-2', 'other-file', 'pushed-1', 'pushed-2']);
  t.truthy(updater.view.findServiceByHostname('ns', 'pushed.ns.svc'), "the stream's service survives the file reload");

  // The stream drops one of its own and cannot drop the file's.
  stream.replaceAll({ workloads: [wl('pushed-2')], services: [], policies: [] });
  stream.applyBatch({ workloads: { remove: ['file-2'] } });
  t.deepEqual(uids(updater), ['file-2', 'other-file', 'pushed-2']);
  t.is(updater.view.findWorkloadByAddr({ network: '', ip: '10.1.0.2' })?.uid, 'file-2');
});
