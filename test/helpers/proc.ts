import { readdirSync, readFileSync } from 'node:fs';

/** Open descriptors of a process ('self' = this one), from /proc. */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The descriptor count once it stops moving (bounded), so a baseline is not taken mid-teardown. */
export async function settledFdCount(pid: number | 'self' = 'self'): Promise<number> {
  let last = -1;
  for (let i = 0; i < 40; i++) {
    const n = fdCount(pid);
    if (n === last) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

/** Resident memory of a process in KiB. */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
