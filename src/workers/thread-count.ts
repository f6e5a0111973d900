import * as fs from 'node:fs';
import * as path from 'node:path';
import { MAX_WORKER_THREADS, type WorkerThreadsSpec } from '../config/worker-threads';

/** The CPUs this process may use: the host's count and, if any, a CPU limit (ZTUNNEL_CPU_LIMIT, else the cgroup's quota). */
export interface CpuBudget {
  readonly cores: number;
  /** CPUs of time per second allowed (1.5 = one and a half CPUs); null = no limit known. */
  readonly limit: number | null;
  /** Where the limit came from (for the start-up log and /config_dump). */
  readonly limitSource: string | null;
}

/**
 * How many data-path threads to run. The CPUs counted are the limit (rounded up) when one is
 * known, never more than the host has: a pod limited to 1.5 CPUs on a 64-core node gets 2,
 * not 64 (threads beyond the quota only queue for it). Unset: one per allowed CPU under a
 * limit; without one, ztunnel's default of a quarter of the cores and at least 2.
 */
export function resolveWorkerThreads(spec: WorkerThreadsSpec, cpu: CpuBudget): { threads: number; why: string } {
  const cores = Math.max(1, cpu.cores);
  const allowed = cpu.limit !== null ? Math.max(1, Math.min(cores, Math.ceil(cpu.limit))) : cores;
  const limited = cpu.limit !== null ? `${cpu.limit} CPUs from ${cpu.limitSource ?? 'a limit'}` : `${cores} cores`;
  const cap = (n: number): number => Math.max(1, Math.min(MAX_WORKER_THREADS, n));
  switch (spec.kind) {
    case 'count':
      return spec.n === 0 ? { threads: cap(allowed), why: `ZTUNNEL_WORKER_THREADS=0: one per CPU (${limited})` } : { threads: cap(spec.n), why: `ZTUNNEL_WORKER_THREADS=${spec.n}` };
    case 'percent':
      return { threads: cap(Math.round((allowed * spec.pct) / 100)), why: `ZTUNNEL_WORKER_THREADS=${spec.pct}% of ${allowed} (${limited})` };
    case 'auto':
      if (cpu.limit !== null) return { threads: cap(allowed), why: `one per CPU of the limit (${limited})` };
      return { threads: cap(Math.max(2, Math.ceil(cores / 4))), why: `a quarter of ${cores} cores, at least 2 (no CPU limit found)` };
  }
}

/**
 * The CPU quota of this process's cgroup: cgroup v2 `cpu.max` ("max 100000" = none), else v1
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = none). `root` and `selfCgroup` are the
 * kernel's files (tests point them at a temp directory). Null when there is no quota or the
 * files cannot be read (not Linux, no cgroup mount): the caller then sizes from the cores.
 */
export function readCgroupCpuLimit(root = '/sys/fs/cgroup', selfCgroup = '/proc/self/cgroup'): { limit: number; source: string } | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(selfCgroup, 'utf8').split('\n');
  } catch {
    return null;
  }
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 !== undefined) {
    const file = path.join(root, v2.slice(3), 'cpu.max');
    const got = readFirst(file);
    if (got !== null) {
      const [quota, period] = got.split(/\s+/);
      const q = Number(quota);
      const p = Number(period);
      if (quota !== 'max' && q > 0 && p > 0) return { limit: q / p, source: file };
      if (quota === 'max') return null;
    }
  }
  const v1 = lines.map((l) => l.split(':')).find((f) => f.length >= 3 && f[1]!.split(',').includes('cpu'));
  if (!v1) return null;
  for (const mount of ['cpu', 'cpu,cpuacct']) {
    const dir = path.join(root, mount, v1.slice(2).join(':'));
    const q = Number(readFirst(path.join(dir, 'cpu.cfs_quota_us')));
    const p = Number(readFirst(path.join(dir, 'cpu.cfs_period_us')));
    if (Number.isFinite(q) && Number.isFinite(p) && p > 0) return q > 0 ? { limit: q / p, source: path.join(dir, 'cpu.cfs_quota_us') } : null;
  }
  return null;
}

function readFirst(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}
