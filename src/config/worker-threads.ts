// ZTUNNEL_WORKER_THREADS parsing (pure); resolved against the machine in src/workers/thread-count.ts.

/**
 * ZTUNNEL_WORKER_THREADS as ztunnel reads it: unset = sized from the machine, a number of
 * threads, `0` = one per CPU, or `N%` of the CPUs.
 */
export type WorkerThreadsSpec = { readonly kind: 'auto' } | { readonly kind: 'count'; readonly n: number } | { readonly kind: 'percent'; readonly pct: number };

export const MAX_WORKER_THREADS = 64;

/** Parses ZTUNNEL_WORKER_THREADS; null when malformed (the config names what it expected). */
export function parseWorkerThreads(raw: string): WorkerThreadsSpec | null {
  const v = raw.trim();
  if (v === '') return { kind: 'auto' };
  const pct = /^(\d+)%$/.exec(v);
  if (pct) {
    const n = Number(pct[1]);
    return n >= 1 && n <= 100 ? { kind: 'percent', pct: n } : null;
  }
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n <= MAX_WORKER_THREADS ? { kind: 'count', n } : null;
}
