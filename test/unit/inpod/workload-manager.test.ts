/**
 * The WorkloadManager's ZDS rules (snapshot, keep, del, re-add, pending retry) and its
 * metrics, with a recording pod starter (the seam the in-pod listener set plugs into) and
 * real namespace descriptors (/proc/self/ns/net needs no privilege to open).
 */
import test from 'ava';
import * as fs from 'node:fs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { WorkloadManager, type RunningPod } from '../../../src/inpod/workload-manager';
import { createWorkloadManagerMetrics } from '../../../src/inpod/metrics';
import { PodNetns } from '../../../src/inpod/pod-netns';
import type { NetnsAddon } from '../../../src/inpod/netns-addon';
import { parsePrometheusText, sumSamples } from '../../helpers/prom-text';

/** PodNetns only calls the addon when sockets are made; these tests never make one. */
const noAddon = {} as NetnsAddon;
const info = (name: string) => ({ name, namespace: 'default', serviceAccount: name });
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

function setup() {
  const registry = new Registry();
  const running = new Map<string, { stopped: boolean; netns: PodNetns }>();
  const failFor = new Set<string>();
  const starts: string[] = [];
  const mgr = new WorkloadManager(
    async (uid, _info, netns): Promise<RunningPod> => {
      starts.push(uid);
      if (failFor.has(uid)) throw new Error('bind failed: EADDRINUSE');
      const r = { stopped: false, netns };
      running.set(uid, r);
      return {
        stop: () => {
          r.stopped = true;
          running.delete(uid);
          netns.close();
        },
      };
    },
    createWorkloadManagerMetrics(registry),
    pino({ level: 'silent' }),
  );
  const ns = (): PodNetns => PodNetns.open(noAddon, '/proc/self/ns/net', 0x539);
  const metrics = async () => {
    const p = parsePrometheusText(await registry.metrics());
    return {
      active: sumSamples(p, 'workload_manager_active_proxy_count'),
      pending: sumSamples(p, 'workload_manager_pending_proxy_count'),
      started: sumSamples(p, 'workload_manager_proxies_started_total'),
      stopped: sumSamples(p, 'workload_manager_proxies_stopped_total'),
    };
  };
  return { mgr, running, failFor, starts, ns, metrics };
}

test.serial('snapshot: adds before snapshot_sent are kept, pods not named since the connection began are stopped', async (t) => {
  const fdsBefore = openFds();
  const { mgr, running, ns, metrics } = setup();
  await mgr.apply({ kind: 'add', uid: 'a', info: info('a') }, ns());
  await mgr.apply({ kind: 'add', uid: 'b', info: info('b') }, ns());
  await mgr.apply({ kind: 'snapshot_sent' }, null);
  t.true(mgr.snapshotDone);
  t.deepEqual(mgr.podUids(), ['a', 'b']);
  // The agent restarts and only knows b now (a was deleted while it was away), c is new.
  mgr.resetSnapshot();
  t.false(mgr.snapshotDone);
  await mgr.apply({ kind: 'add', uid: 'b', info: info('b') }, ns());
  await mgr.apply({ kind: 'add', uid: 'c', info: info('c') }, ns());
  t.deepEqual(mgr.podUids(), ['a', 'b', 'c'], 'nothing is stopped before the snapshot is complete');
  await mgr.apply({ kind: 'snapshot_sent' }, null);
  t.deepEqual(mgr.podUids(), ['b', 'c']);
  t.false(running.has('a'));
  t.deepEqual(await metrics(), { active: 2, pending: 0, started: 3, stopped: 1 });
  mgr.stopAll();
  t.is(openFds(), fdsBefore, 'every namespace descriptor was closed (re-adds of a known pod close theirs at once)');
});

test.serial('keep protects a pod through the snapshot, and is refused after it; a second snapshot_sent is a protocol error', async (t) => {
  const { mgr, ns } = setup();
  await mgr.apply({ kind: 'add', uid: 'a', info: info('a') }, ns());
  await mgr.apply({ kind: 'snapshot_sent' }, null);
  mgr.resetSnapshot();
  await mgr.apply({ kind: 'keep', uid: 'a' }, null);
  await mgr.apply({ kind: 'snapshot_sent' }, null);
  t.deepEqual(mgr.podUids(), ['a']);
  await t.throwsAsync(mgr.apply({ kind: 'keep', uid: 'a' }, null), { message: /keep for uid a after snapshot_sent/ });
  await t.throwsAsync(mgr.apply({ kind: 'snapshot_sent' }, null), { message: /snapshot_sent received twice/ });
  mgr.stopAll();
});

test.serial('del stops the pod at once after the snapshot; before it, the pod is left to the reconcile', async (t) => {
  const { mgr, running, ns, metrics } = setup();
  await mgr.apply({ kind: 'add', uid: 'a', info: info('a') }, ns());
  await mgr.apply({ kind: 'del', uid: 'a' }, null);
  t.true(running.has('a'), 'before the snapshot a del only forgets the name');
  await mgr.apply({ kind: 'snapshot_sent' }, null);
  t.false(running.has('a'), 'the reconcile stopped it');
  await mgr.apply({ kind: 'add', uid: 'b', info: info('b') }, ns());
  await mgr.apply({ kind: 'del', uid: 'b' }, null);
  t.deepEqual(mgr.podUids(), []);
  await mgr.apply({ kind: 'del', uid: 'never-added' }, null);
  t.deepEqual(await metrics(), { active: 0, pending: 0, started: 2, stopped: 2 });
});

test.serial('re-adding a pod with the same namespace is idempotent; a failed start is pending and retried', async (t) => {
  const fdsBefore = openFds();
  const { mgr, failFor, starts, ns, metrics } = setup();
  await mgr.apply({ kind: 'add', uid: 'a', info: info('a') }, ns());
  await mgr.apply({ kind: 'add', uid: 'a', info: info('a') }, ns());
  t.deepEqual(starts, ['a'], 'same netns inode: not started twice');
  failFor.add('b');
  await t.throwsAsync(mgr.apply({ kind: 'add', uid: 'b', info: info('b') }, ns()), { message: /cannot start the proxy of pod b \(default\/b\): bind failed: EADDRINUSE/ });
  t.deepEqual(mgr.pendingUids(), ['b']);
  t.like(await metrics(), { active: 1, pending: 1 });
  await mgr.retryPending();
  t.deepEqual(mgr.pendingUids(), ['b'], 'still failing: still pending');
  failFor.delete('b');
  await mgr.retryPending();
  t.deepEqual(mgr.pendingUids(), []);
  t.deepEqual(mgr.podUids(), ['a', 'b']);
  t.like(await metrics(), { active: 2, pending: 0, started: 2 });
  mgr.stopAll();
  t.is(openFds(), fdsBefore);
});

test.serial('an add without a namespace or a pending pod deleted before the snapshot leaves nothing open', async (t) => {
  const fdsBefore = openFds();
  const { mgr, failFor, ns } = setup();
  await t.throwsAsync(mgr.apply({ kind: 'add', uid: 'x', info: info('x') }, null), { message: /without a network namespace/ });
  failFor.add('p');
  await t.throwsAsync(mgr.apply({ kind: 'add', uid: 'p', info: info('p') }, ns()));
  await mgr.apply({ kind: 'del', uid: 'p' }, null);
  t.deepEqual(mgr.pendingUids(), []);
  t.is(openFds(), fdsBefore);
});
