import path from 'node:path';
import { ALL_PATHS, BASELINE_PATHS, workersPathId, type PathId } from '../paths/types';
import { ALL_SCENARIOS, type ScenarioId } from './results';
import { MAX_WORKERS } from '../paths/mesh';

export const USAGE = `usage: node dist/bench/run.js [options]
  --full                 long suite (5 trials, 15 s bulk, 5000 idle conns)
  --scenarios LIST       comma list of ${ALL_SCENARIOS.join(',')} (default: all)
  --paths LIST           comma list of ${ALL_PATHS.join(',')} (default: all but *-base)
  --baseline DIR         an earlier build of ztunnel-ts (a checkout with dist/ built): adds the
                         mesh-base and mesh-nopool-base paths, today's figures in the same run
  --workers LIST         workers sweep: the mesh path once per count (paths mesh-w1, mesh-w2, …)
                         with ZTUNNEL_WORKER_THREADS=N in both nodes, counts 1..${MAX_WORKERS}; next to
                         haproxy only and scenarios throughput,latency,connrate unless given
  --trials N             trials per figure (default 3 quick, 5 full)
  --cpu-prof             run the mesh proxies under node --cpu-prof (bench/results/prof)
  --mesh-log-level L     LOG_LEVEL of the mesh proxies (default error; info = access logs on)
  --out DIR              results directory (default bench/results)
  --keep-temp            keep generated configs, certificates and proxy logs
  --soak                 soak instead of the suite: mixed bulk, request/response and
                         connection churn through two node proxies, sampled every 10 s
  --soak-minutes N       length of the soak (default 30, at most 1440)
`;

/** What the command line asks for (`help`: print USAGE and run nothing). */
export interface BenchArgs {
  readonly help: boolean;
  readonly full: boolean;
  /** Paths in run order: direct first (every ratio needs it), the sweep's `mesh-wN` last. */
  readonly paths: PathId[];
  readonly scenarios: ScenarioId[];
  readonly trials?: number;
  readonly baselineRoot?: string;
  /** Worker counts of the sweep, ascending, without repeats. */
  readonly workers?: number[];
  readonly cpuProf: boolean;
  readonly meshLogLevel: string;
  readonly outDir: string;
  readonly keepTemp: boolean;
  readonly soak: boolean;
  readonly soakMinutes: number;
}

/** The figures worker counts change; memory per idle connection is not one of them. */
const SWEEP_SCENARIOS: readonly ScenarioId[] = ['throughput', 'latency', 'connrate'];

function parseList<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[]): T[] {
  if (!raw) throw new Error(`${flag} needs a value`);
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new Error(`${flag}: unknown ${JSON.stringify(i)} (allowed: ${allowed.join(', ')})`);
  return items as T[];
}

function parseWorkers(raw: string | undefined): number[] {
  if (!raw) throw new Error('--workers needs a value');
  const counts = raw.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < 1 || n > MAX_WORKERS) throw new Error(`--workers: ${JSON.stringify(s)} is not a worker count 1..${MAX_WORKERS}`);
    return n;
  });
  if (counts.length === 0) throw new Error('--workers needs at least one worker count');
  return [...new Set(counts)].sort((a, b) => a - b);
}

/** Parses the bench's command line (pure: no I/O); throws a message naming the bad option. */
export function parseBenchArgs(argv: readonly string[], repoRoot: string): BenchArgs {
  let full = false;
  let paths: PathId[] | undefined;
  let baselineRoot: string | undefined;
  let scenarios: ScenarioId[] | undefined;
  let trials: number | undefined;
  let workers: number[] | undefined;
  let cpuProf = false;
  let meshLogLevel = 'error';
  let outDir = path.join(repoRoot, 'bench', 'results');
  let keepTemp = false;
  let soak = false;
  let soakMinutes = 30;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--full': full = true; break;
      case '--scenarios': scenarios = parseList(flag, value(), ALL_SCENARIOS); break;
      case '--paths': paths = parseList(flag, value(), ALL_PATHS); break;
      case '--workers': workers = parseWorkers(value()); break;
      case '--trials': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 1 || v > 50) throw new Error('--trials must be an integer 1..50');
        trials = v;
        break;
      }
      case '--cpu-prof': cpuProf = true; break;
      case '--mesh-log-level': meshLogLevel = value() ?? 'error'; break;
      case '--out': outDir = path.resolve(value() ?? outDir); break;
      case '--keep-temp': keepTemp = true; break;
      case '--baseline': baselineRoot = path.resolve(value() ?? ''); break;
      case '--soak': soak = true; break;
      case '--soak-minutes': {
        const v = Number(value());
        if (!Number.isFinite(v) || v <= 0 || v > 1440) throw new Error('--soak-minutes must be a number of minutes in (0, 1440]');
        soakMinutes = v;
        soak = true;
        break;
      }
      case '--help': case '-h': help = true; break;
      default: throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (soak && workers) throw new Error('--workers sweeps the suite; the soak runs the mesh path with the nodes\' default workers');
  // A sweep compares worker counts with each other and with haproxy; the other paths only when asked.
  const selected = paths ?? (workers ? ['haproxy'] : ALL_PATHS.filter((p) => !BASELINE_PATHS.includes(p)));
  // Ratios need the baseline.
  if (!selected.includes('direct')) selected.unshift('direct');
  // With --baseline, every mesh path selected runs from both builds.
  if (baselineRoot) {
    if (selected.includes('mesh') && !selected.includes('mesh-base')) selected.push('mesh-base');
    if (selected.includes('mesh-nopool') && !selected.includes('mesh-nopool-base')) selected.push('mesh-nopool-base');
  }
  if (workers) selected.push(...workers.map(workersPathId));
  return {
    help,
    full,
    paths: selected,
    scenarios: scenarios ?? [...(workers ? SWEEP_SCENARIOS : ALL_SCENARIOS)],
    ...(trials === undefined ? {} : { trials }),
    ...(baselineRoot === undefined ? {} : { baselineRoot }),
    ...(workers === undefined ? {} : { workers }),
    cpuProf,
    meshLogLevel,
    outDir,
    keepTemp,
    soak,
    soakMinutes,
  };
}
