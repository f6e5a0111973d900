import test from 'ava';
import { closeSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readiness } from '../../../src/admin/readiness';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createRegistry } from '../../../src/metrics/registry';
import { createStateMetrics } from '../../../src/metrics/state-metrics';
import { LocalConfigSource } from '../../../src/state/local-source';
import { StateUpdater } from '../../../src/state/proxy-state';
import type { StateChange } from '../../../src/state/view';
import { loopbackConfig } from './builders';

const one = (uid: string, ip: string): string => `workloads:\n- uid: ${uid}\n  name: ${uid}\n  namespace: ns\n  workloadIps: ["${ip}"]\n`;

function setup(t: { teardown: (fn: () => void) => void }, file: string | null, inline: string | null = null, stableMs = 60) {
  const logs = new LogCollector();
  const logger = createLogger({ level: 'debug', format: 'json', destination: logs });
  const registry = createRegistry({ component: 'test', processMetrics: false });
  const updater = new StateUpdater(logger);
  const metrics = createStateMetrics(registry, updater.view);
  const readiness = new Readiness();
  const release = readiness.register('state');
  const changes: StateChange[] = [];
  updater.view.onChange((c) => changes.push(c));
  const src = new LocalConfigSource({ path: file, inline, updater, logger, metrics, onFirstLoad: release, debounceMs: 30, stableMs });
  t.teardown(() => src.destroy());
  const counter = async (result: string): Promise<number> => {
    const m = await registry.getSingleMetric('ztunnel_ts_local_config_reloads_total')!.get();
    return m.values.find((v) => v.labels['result'] === result)?.value ?? 0;
  };
  return { logs, registry, updater, src, readiness, changes, counter };
}

/** Polls `cond` every 20ms for at most `ms` (bounded wait); returns whether it became true. */
async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ztunnel-ts-local-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('loads the file at start, becomes ready, and dumps the static config', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  const text = readFileSync(loopbackConfig, 'utf8');
  writeFileSync(file, text);
  const s = setup(t, file);
  t.false(s.readiness.isReady());
  await s.src.start();
  await s.src.ready;
  t.true(s.readiness.isReady());
  t.is(s.updater.view.allWorkloads().length, 2);
  t.like(s.src.dump(), { source: file, staticConfig: text, loads: 1, lastError: null, version: 1 });
  t.is(await s.counter('applied'), 1);
  t.is(await s.counter('rejected'), 0);
  const text2 = await s.registry.metrics();
  t.regex(text2, /ztunnel_ts_state_objects\{kind="workload"\} 2/);
});

test('reload on change; a bad file is rejected with every error logged and the last good state kept; a fix applies again', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, one('a', '10.0.0.1'));
  const s = setup(t, file);
  await s.src.start();
  t.truthy(s.updater.view.findWorkloadByUid('a'));

  writeFileSync(file, one('b', '10.0.0.2'));
  t.true(await until(() => !!s.updater.view.findWorkloadByUid('b')), 'reloaded after an in-place write');
  t.falsy(s.updater.view.findWorkloadByUid('a'));
  t.deepEqual(s.changes.at(-1)?.workloadsAdded.map((w) => w.uid), ['b']);
  t.deepEqual(s.changes.at(-1)?.workloadsRemoved.map((w) => w.uid), ['a']);

  writeFileSync(file, `${one('c', '10.0.0.300')}  protocol: QUIC\n`);
  t.true(await until(async () => (await s.counter('rejected')) === 1), 'rejection counted');
  t.truthy(s.updater.view.findWorkloadByUid('b'), 'last good state kept');
  t.falsy(s.updater.view.findWorkloadByUid('c'));
  const warn = s.logs.find((r) => r['msg'] === 'local config rejected (2 errors); keeping the last good state')[0];
  t.truthy(warn);
  t.deepEqual(warn?.['errors'], [
    `${file}:5:17: workloads[0].workloadIps[0]: "10.0.0.300" is not an IP address (expected e.g. 10.0.0.1 or fd00::1)`,
    `${file}:6:13: workloads[0].protocol: "QUIC" is not valid; expected one of HBONE, TCP`,
  ]);
  t.is(warn?.['reason'], 'CONFIG_INVALID');
  t.like(s.src.dump(), { lastError: { errors: warn?.['errors'] } });

  writeFileSync(file, one('d', '10.0.0.4'));
  t.true(await until(() => !!s.updater.view.findWorkloadByUid('d')), 'a fixed file applies');
  t.like(s.src.dump(), { lastError: null });
  t.is(await s.counter('applied'), 3);
  t.is(await s.counter('rejected'), 1);
});

test('editor-style replace (write temp file, rename over) is picked up; identical content is not re-applied', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, one('a', '10.0.0.1'));
  const s = setup(t, file);
  await s.src.start();
  const tmp = path.join(dir, '.state.yaml.swp');
  writeFileSync(tmp, one('e', '10.0.0.5'));
  renameSync(tmp, file);
  t.true(await until(() => !!s.updater.view.findWorkloadByUid('e')));
  const applied = await s.counter('applied');
  // Rewrite the same bytes: the hash matches, nothing is applied or counted.
  writeFileSync(file, one('e', '10.0.0.5'));
  writeFileSync(path.join(dir, 'unrelated.txt'), 'x');
  await new Promise((r) => setTimeout(r, 300));
  await s.src.close(); // close() waits for a reload in flight: every event so far is handled
  t.is(await s.counter('applied'), applied);
  t.is(s.updater.view.version, 2);
});

test('a deleted file is reported once and the state stays; it comes back when the file does', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, one('a', '10.0.0.1'));
  const s = setup(t, file);
  await s.src.start();
  unlinkSync(file);
  t.true(await until(async () => (await s.counter('rejected')) === 1));
  t.truthy(s.updater.view.findWorkloadByUid('a'));
  t.regex(String((s.src.dump() as { lastError: { errors: string[] } }).lastError.errors[0]), /cannot read \(ENOENT\)$/);
  writeFileSync(file, one('z', '10.0.0.9'));
  t.true(await until(() => !!s.updater.view.findWorkloadByUid('z')));
});

test('a bad file at start fails start with every error listed (there is no good state to keep)', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, 'workloads:\n- {uid: a, name: a}\n- {uid: b, name: b, namespace: n, protocol: UDP}\n');
  const s = setup(t, file);
  const err = await t.throwsAsync(s.src.start());
  t.is((err as { reason?: string }).reason, 'CONFIG_INVALID');
  const lines = (err?.message ?? '').split('\n');
  t.regex(lines[0] ?? '', /state\.yaml is invalid \(no earlier good state to keep; fix it and start again\):$/);
  t.deepEqual(lines.slice(1), [
    `  ${file}:2:3: workloads[0].namespace: required field is missing (expected a string)`,
    `  ${file}:3:45: workloads[1].protocol: "UDP" is not valid; expected one of HBONE, TCP`,
  ]);
  t.false(s.readiness.isReady());
});

test('a file that does not exist yet at start: not ready, watched, ready once it arrives', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  const s = setup(t, file);
  await s.src.start();
  t.deepEqual(s.readiness.pendingTasks(), ['state']);
  writeFileSync(file, one('a', '10.0.0.1'));
  t.true(await until(() => s.readiness.isReady()));
  t.truthy(s.updater.view.findWorkloadByUid('a'));
});

test('a zero-byte file (an in-place rewrite caught mid-way) is rejected and the last good state stays', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, one('a', '10.0.0.1'));
  const s = setup(t, file);
  await s.src.start();
  writeFileSync(file, '');
  t.true(await until(async () => (await s.counter('rejected')) === 1));
  t.truthy(s.updater.view.findWorkloadByUid('a'), 'the workload is still there');
  t.deepEqual(s.changes.map((c) => c.workloadsRemoved.length), [0], 'nothing was ever removed');
  t.regex(String((s.src.dump() as { lastError: { errors: string[] } }).lastError.errors[0]), /the config is empty; an empty state is written "workloads: \[\]"/);
  // The intentionally empty form is accepted.
  writeFileSync(file, 'workloads: []\n');
  t.true(await until(() => s.updater.view.allWorkloads().length === 0));
});

test('a file still being written is read only once it is stable: a half-written version is never applied', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  const three = one('a', '10.0.0.1') + one('b', '10.0.0.2').replace('workloads:\n', '') + one('c', '10.0.0.3').replace('workloads:\n', '');
  writeFileSync(file, three);
  const s = setup(t, file, null, 500);
  await s.src.start();
  t.is(s.updater.view.allWorkloads().length, 3);
  // An in-place rewrite by a slow writer: truncate, the first workload (valid YAML on its
  // own), a pause longer than the debounce, then the rest (with one workload changed).
  const fd = openSync(file, 'w');
  const head = one('a', '10.0.0.1');
  writeSync(fd, head);
  await new Promise((r) => setTimeout(r, 150));
  writeSync(fd, three.slice(head.length).replace('10.0.0.3', '10.0.0.33'));
  closeSync(fd);
  t.true(await until(() => s.updater.view.findWorkloadByUid('c')?.workloadIps[0] === '10.0.0.33'));
  await s.src.close(); // waits for a reload in flight, so a second change would be seen below
  t.deepEqual(s.changes.map((c) => [c.workloadsRemoved.length, c.workloadsUpdated.map((w) => w.uid)]), [[0, []], [0, ['c']]], 'one change, straight to the final content');
  t.is(await s.counter('rejected'), 0);
});

test('inline LOCAL_XDS loads once; invalid inline config fails start with the errors', async (t) => {
  const s = setup(t, null, one('inline', '10.0.0.1'));
  await s.src.start();
  t.truthy(s.updater.view.findWorkloadByUid('inline'));
  t.like(s.src.dump(), { source: 'LOCAL_XDS', loads: 1 });
  const bad = setup(t, null, 'workloads: [{uid: a, name: a, namespace: n, protocol: X}]');
  const err = await t.throwsAsync(bad.src.start());
  t.regex(err?.message ?? '', /LOCAL_XDS is invalid:\n {2}LOCAL_XDS:1:55: workloads\[0\]\.protocol: "X" is not valid; expected one of HBONE, TCP/);
  t.is((err as { reason?: string }).reason, 'CONFIG_INVALID');
});

test('close stops watching: later edits are ignored', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, one('a', '10.0.0.1'));
  const s = setup(t, file);
  await s.src.start();
  await s.src.close();
  writeFileSync(file, one('b', '10.0.0.2'));
  await new Promise((r) => setTimeout(r, 250));
  t.falsy(s.updater.view.findWorkloadByUid('b'));
});
