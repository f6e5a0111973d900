/**
 * `npm run bench [-- --full] [--scenarios a,b] [--paths a,b] [--trials N] [--workers 1,2] [--cpu-prof]`
 * Compares ztunnel-ts (mesh, passthrough) with haproxy and stunnel two-hop mTLS tunnels
 * and a direct connection on loopback. See bench/README.md.
 */
import path from 'node:path';
import { runBench, terminalReport } from './lib/harness';
import { QUICK, FULL } from './scenarios';
import { parseBenchArgs, USAGE } from './lib/args';
import { runSoak, soakTerminal } from './soak';

async function main(argv: string[]): Promise<number> {
  const repoRoot = path.resolve(__dirname, '..', '..');
  const a = parseBenchArgs(argv, repoRoot);
  if (a.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const bench = {
    cpuProf: a.cpuProf,
    profDir: path.join(a.outDir, 'prof'),
    meshLogLevel: a.meshLogLevel,
    repoRoot,
    ...(a.baselineRoot ? { baselineRoot: a.baselineRoot } : {}),
  };
  const progress = (l: string): void => void process.stderr.write(`${l}\n`);
  if (a.soak) {
    const { result, jsonPath, htmlPath } = await runSoak({ minutes: a.soakMinutes, windowMs: 10_000, outDir: a.outDir, keepTemp: a.keepTemp, bench, progress });
    process.stdout.write(`${soakTerminal(result)}\n\nresults: ${jsonPath}\nchart:   ${htmlPath}\n`);
    return result.failed > 0 || result.samples.length === 0 ? 1 : 0;
  }
  const { result, jsonPath, htmlPath } = await runBench({
    mode: a.full ? 'full' : 'quick',
    bounds: a.full ? FULL : QUICK,
    trials: a.trials ?? (a.full ? 5 : 3),
    paths: a.paths,
    scenarios: a.scenarios,
    outDir: a.outDir,
    keepTemp: a.keepTemp,
    bench,
    progress,
  });
  process.stdout.write(`${terminalReport(result)}\n\nresults: ${jsonPath}\nchart:   ${htmlPath}\n`);
  if (a.cpuProf) process.stdout.write(`profiles: ${path.join(a.outDir, 'prof')} (summarise with node dist/bench/profile-summary.js <file>)\n`);
  return result.paths.some((p) => p.status === 'failed') ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
