/**
 * `npm run bench [-- --full] [--scenarios a,b] [--paths a,b] [--trials N] [--cpu-prof]`
 * Compares ztunnel-ts (mesh, passthrough) with haproxy and stunnel two-hop mTLS tunnels
 * and a direct connection on loopback. See bench/README.md.
 */
import path from 'node:path';
import { runBench, terminalReport } from './lib/harness';
import { QUICK, FULL } from './scenarios';
import { ALL_PATHS, BASELINE_PATHS, type PathId } from './paths/types';
import { ALL_SCENARIOS, type ScenarioId } from './lib/results';
import { runSoak, soakTerminal } from './soak';

const USAGE = `usage: node dist/bench/run.js [options]
  --full                 long suite (5 trials, 15 s bulk, 5000 idle conns)
  --scenarios LIST       comma list of ${ALL_SCENARIOS.join(',')} (default: all)
  --paths LIST           comma list of ${ALL_PATHS.join(',')} (default: all but *-base)
  --baseline DIR         an earlier build of ztunnel-ts (a checkout with dist/ built): adds the
                         mesh-base and mesh-nopool-base paths, today's figures in the same run
  --trials N             trials per figure (default 3 quick, 5 full)
  --cpu-prof             run the mesh proxies under node --cpu-prof (bench/results/prof)
  --mesh-log-level L     LOG_LEVEL of the mesh proxies (default error; info = access logs on)
  --out DIR              results directory (default bench/results)
  --keep-temp            keep generated configs, certificates and proxy logs
  --soak                 soak instead of the suite: mixed bulk, request/response and
                         connection churn through two node proxies, sampled every 10 s
  --soak-minutes N       length of the soak (default 30, at most 1440)
`;

function parseList<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[]): T[] {
  if (!raw) throw new Error(`${flag} needs a value`);
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new Error(`${flag}: unknown ${JSON.stringify(i)} (allowed: ${allowed.join(', ')})`);
  return items as T[];
}

async function main(argv: string[]): Promise<number> {
  const repoRoot = path.resolve(__dirname, '..', '..');
  let full = false;
  let paths: PathId[] = ALL_PATHS.filter((p) => !BASELINE_PATHS.includes(p));
  let baselineRoot: string | undefined;
  let scenarios: ScenarioId[] = [...ALL_SCENARIOS];
  let trials: number | undefined;
  let cpuProf = false;
  let meshLogLevel = 'error';
  let outDir = path.join(repoRoot, 'bench', 'results');
  let keepTemp = false;
  let soak = false;
  let soakMinutes = 30;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--full': full = true; break;
      case '--scenarios': scenarios = parseList(flag, value(), ALL_SCENARIOS); break;
      case '--paths': paths = parseList(flag, value(), ALL_PATHS); break;
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
      case '--help': case '-h': process.stdout.write(USAGE); return 0;
      default: throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  const bench = { cpuProf, profDir: path.join(outDir, 'prof'), meshLogLevel, repoRoot, ...(baselineRoot ? { baselineRoot } : {}) };
  const progress = (l: string): void => void process.stderr.write(`${l}\n`);
  if (soak) {
    const { result, jsonPath, htmlPath } = await runSoak({ minutes: soakMinutes, windowMs: 10_000, outDir, keepTemp, bench, progress });
    process.stdout.write(`${soakTerminal(result)}\n\nresults: ${jsonPath}\nchart:   ${htmlPath}\n`);
    return result.failed > 0 || result.samples.length === 0 ? 1 : 0;
  }
  // Ratios need the baseline.
  if (!paths.includes('direct')) paths.unshift('direct');
  // With --baseline, every mesh path selected runs from both builds.
  if (baselineRoot) {
    if (paths.includes('mesh') && !paths.includes('mesh-base')) paths.push('mesh-base');
    if (paths.includes('mesh-nopool') && !paths.includes('mesh-nopool-base')) paths.push('mesh-nopool-base');
  }
  const { result, jsonPath, htmlPath } = await runBench({
    mode: full ? 'full' : 'quick',
    bounds: full ? FULL : QUICK,
    trials: trials ?? (full ? 5 : 3),
    paths,
    scenarios,
    outDir,
    keepTemp,
    bench,
    progress,
  });
  process.stdout.write(`${terminalReport(result)}\n\nresults: ${jsonPath}\nchart:   ${htmlPath}\n`);
  if (cpuProf) process.stdout.write(`profiles: ${path.join(outDir, 'prof')} (summarise with node dist/bench/profile-summary.js <file>)\n`);
  return result.paths.some((p) => p.status === 'failed') ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
