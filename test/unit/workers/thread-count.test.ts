import test from 'ava';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWorkerThreads } from '../../../src/config/worker-threads';
import { loadNodeConfig } from '../../../src/config/node-config';
import { ConfigError } from '../../../src/config/load';
import { readCgroupCpuLimit, resolveWorkerThreads, type CpuBudget } from '../../../src/workers/thread-count';

const host = (cores: number, limit: number | null = null): CpuBudget => ({ cores, limit, limitSource: limit === null ? null : 'test' });

test('ZTUNNEL_WORKER_THREADS: empty = sized from the machine, a count, 0 = one per CPU, N% of the CPUs', (t) => {
  t.deepEqual(parseWorkerThreads(''), { kind: 'auto' });
  t.deepEqual(parseWorkerThreads('3'), { kind: 'count', n: 3 });
  t.deepEqual(parseWorkerThreads('0'), { kind: 'count', n: 0 });
  t.deepEqual(parseWorkerThreads(' 50% '), { kind: 'percent', pct: 50 });
  for (const bad of ['0%', '101%', '65', '-1', '1.5', 'two', '%']) t.is(parseWorkerThreads(bad), null, bad);
});

test('a malformed ZTUNNEL_WORKER_THREADS or ZTUNNEL_CPU_LIMIT is a config error naming the key and what was expected', (t) => {
  const err = t.throws(() => loadNodeConfig({ ZTUNNEL_WORKER_THREADS: 'lots' }, []), { instanceOf: ConfigError });
  t.regex(err!.message, /ZTUNNEL_WORKER_THREADS.*lots.*a thread count from 0 to 64, a percentage of the CPUs \(50%\), or empty/s);
  const err2 = t.throws(() => loadNodeConfig({ ZTUNNEL_CPU_LIMIT: '-2' }, []), { instanceOf: ConfigError });
  t.regex(err2!.message, /ZTUNNEL_CPU_LIMIT.*-2.*a positive number of CPUs/s);
  t.is(loadNodeConfig({ ZTUNNEL_CPU_LIMIT: '1.5' }, []).config.cpuLimit, 1.5);
});

test('unset: a quarter of the cores and at least 2 without a limit; one per CPU of a limit, rounded up and never above the cores', (t) => {
  t.is(resolveWorkerThreads({ kind: 'auto' }, host(2)).threads, 2);
  t.is(resolveWorkerThreads({ kind: 'auto' }, host(16)).threads, 4);
  t.is(resolveWorkerThreads({ kind: 'auto' }, host(64, 1.5)).threads, 2, 'a pod limited to 1.5 CPUs on a big node');
  t.is(resolveWorkerThreads({ kind: 'auto' }, host(64, 0.25)).threads, 1);
  t.is(resolveWorkerThreads({ kind: 'auto' }, host(4, 8)).threads, 4, 'a limit above the host is the host');
  t.regex(resolveWorkerThreads({ kind: 'auto' }, host(64, 1.5)).why, /1\.5 CPUs from test/);
});

test('explicit counts and shares: a count is taken as is (capped at 64), 0 and N% follow the allowed CPUs', (t) => {
  t.is(resolveWorkerThreads({ kind: 'count', n: 3 }, host(2)).threads, 3);
  t.is(resolveWorkerThreads({ kind: 'count', n: 0 }, host(8)).threads, 8);
  t.is(resolveWorkerThreads({ kind: 'count', n: 0 }, host(8, 2.5)).threads, 3);
  t.is(resolveWorkerThreads({ kind: 'percent', pct: 50 }, host(8)).threads, 4);
  t.is(resolveWorkerThreads({ kind: 'percent', pct: 10 }, host(4)).threads, 1, 'never 0');
  t.is(resolveWorkerThreads({ kind: 'count', n: 0 }, host(512)).threads, 64);
});

/** A fake /sys/fs/cgroup and /proc/self/cgroup in a temp directory. */
function cgroupFiles(t: import('ava').ExecutionContext, self: string, files: Record<string, string>): { root: string; self: string } {
  const dir = mkdtempSync(join(tmpdir(), 'zt-cgroup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'sys');
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), body);
  }
  writeFileSync(join(dir, 'self-cgroup'), self);
  return { root, self: join(dir, 'self-cgroup') };
}

test('cgroup v2: cpu.max quota/period of this process group; "max" is no limit', (t) => {
  const a = cgroupFiles(t, '0::/kubepods/pod1/c1\n', { 'kubepods/pod1/c1/cpu.max': '150000 100000\n' });
  t.deepEqual(readCgroupCpuLimit(a.root, a.self), { limit: 1.5, source: join(a.root, 'kubepods/pod1/c1/cpu.max') });
  const b = cgroupFiles(t, '0::/\n', { 'cpu.max': 'max 100000\n' });
  t.is(readCgroupCpuLimit(b.root, b.self), null);
});

test('cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us under the cpu controller; -1 is no limit; unreadable is no limit', (t) => {
  const a = cgroupFiles(t, '4:memory:/x\n2:cpu,cpuacct:/kubepods/pod2\n', { 'cpu,cpuacct/kubepods/pod2/cpu.cfs_quota_us': '50000\n', 'cpu,cpuacct/kubepods/pod2/cpu.cfs_period_us': '100000\n' });
  t.is(readCgroupCpuLimit(a.root, a.self)?.limit, 0.5);
  const b = cgroupFiles(t, '1:cpu:/\n', { 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' });
  t.is(readCgroupCpuLimit(b.root, b.self), null);
  t.is(readCgroupCpuLimit('/nonexistent', '/nonexistent/cgroup'), null);
});
