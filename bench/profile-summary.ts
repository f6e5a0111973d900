/**
 * `node dist/bench/profile-summary.js <file.cpuprofile|dir> [--top N]`
 * Top functions by self time in V8 CPU profiles (node --cpu-prof): the hot-path
 * evidence for what to optimise in the mesh proxies. A directory means every
 * .cpuprofile in it, each summarised separately.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: number[];
}
interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: number[];
  readonly timeDeltas: number[];
}

export interface SelfTimeRow {
  readonly name: string;
  readonly location: string;
  readonly selfMs: number;
  readonly selfPct: number;
  readonly totalMs: number;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const i = u.lastIndexOf('/dist/');
  if (i >= 0) return u.slice(i + 1);
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm);
  return u;
}

/**
 * Self time per function (same name and source position merged across call paths), and
 * inclusive ("total") time counted once per sample per function.
 */
export function summarizeProfile(p: CpuProfile): { rows: SelfTimeRow[]; totalMs: number; idleMs: number } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}\u0000${n.callFrame.url}:${n.callFrame.lineNumber + 1}:${n.callFrame.columnNumber + 1}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the next delta to this sample.
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    totalUs += dt;
    if (node.callFrame.functionName === '(idle)') idleUs += dt;
    const k = keyOf(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id)!);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const rows = [...self.entries()]
    .map(([k, us]) => {
      const [name, loc] = k.split('\u0000') as [string, string];
      const colon = loc.lastIndexOf(':', loc.lastIndexOf(':') - 1);
      const url = loc.slice(0, colon);
      return { name, location: `${shortUrl(url)}${url ? loc.slice(colon) : ''}`, selfMs: us / 1000, selfPct: (us / busyUs) * 100, totalMs: (total.get(k) ?? 0) / 1000 };
    })
    .sort((a, b) => b.selfMs - a.selfMs);
  return { rows, totalMs: totalUs / 1000, idleMs: idleUs / 1000 };
}

function render(file: string, top: number): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const { rows, totalMs, idleMs } = summarizeProfile(prof);
  const out = [`${path.basename(file)}: ${(totalMs / 1000).toFixed(1)} s sampled, ${((totalMs - idleMs) / 1000).toFixed(1)} s busy (self % is of busy time)`];
  out.push(`${'self ms'.padStart(9)} ${'self %'.padStart(7)} ${'total ms'.padStart(9)}  function  (location)`);
  for (const r of rows.filter((x) => x.name !== '(idle)').slice(0, top)) {
    out.push(`${r.selfMs.toFixed(1).padStart(9)} ${r.selfPct.toFixed(1).padStart(7)} ${r.totalMs.toFixed(1).padStart(9)}  ${r.name}  (${r.location || 'native'})`);
  }
  return out.join('\n');
}

function main(argv: string[]): number {
  let top = 15;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') top = Number(argv[++i]);
    else files.push(argv[i]!);
  }
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile|dir>... [--top N]\n');
    return 2;
  }
  const expanded = files.flatMap((f) => (statSync(f).isDirectory() ? readdirSync(f).filter((x) => x.endsWith('.cpuprofile')).sort().map((x) => path.join(f, x)) : [f]));
  process.stdout.write(`${expanded.map((f) => render(f, top)).join('\n\n')}\n`);
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
