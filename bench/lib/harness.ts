import os from 'node:os';
import path from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { openBenchSession } from './session';
import { finishMetric, terminalReport, htmlReport } from './report';
import type { HoldArgs, HoldResult } from './load-types';
import type { RunResult, MetricResult, PathRecord, ScenarioId, TrialError } from './results';
import { metricDefs, scenarioSteps, type Bounds, type TrialEnv } from '../scenarios';
import { workersOf, type PathDef, type PathHandle, type PathId, type StaticPathId, type BenchOptions } from '../paths/types';
import { direct } from '../paths/direct';
import { haproxy } from '../paths/haproxy';
import { stunnel } from '../paths/stunnel';
import { mesh, meshBase, meshNoPool, meshNoPoolBase, meshWorkers, passthrough } from '../paths/mesh';
import { workersSweep } from './sweep';

export const PATH_DEFS: Record<StaticPathId, PathDef> = { direct, haproxy, stunnel, mesh, 'mesh-nopool': meshNoPool, passthrough, 'mesh-base': meshBase, 'mesh-nopool-base': meshNoPoolBase };

/** A path's definition; the workers sweep's `mesh-wN` paths are made per worker count. */
export function pathDef(id: PathId): PathDef {
  const workers = workersOf(id);
  return workers === undefined ? PATH_DEFS[id as StaticPathId] : meshWorkers(workers);
}

/**
 * Scenarios a path runs. The unpooled mesh variant exists to measure handshake-bound
 * figures (new HBONE connection per application connection, memory per TLS connection);
 * bulk and latency over it would only repeat the pooled mesh numbers.
 */
const PATH_SCENARIOS: Partial<Record<PathId, readonly ScenarioId[]>> = { 'mesh-nopool': ['connrate', 'memory'], 'mesh-nopool-base': ['connrate', 'memory'] };

export interface RunOptions {
  readonly mode: 'quick' | 'full' | 'custom';
  readonly bounds: Bounds;
  readonly trials: number;
  readonly paths: readonly PathId[];
  readonly scenarios: readonly ScenarioId[];
  readonly outDir: string;
  readonly bench: BenchOptions;
  /** Progress lines (stderr by default). */
  readonly progress: (line: string) => void;
  /** Keep the temp directory (configs, certs, proxy logs) for inspection. */
  readonly keepTemp: boolean;
}

function gitCommit(repoRoot: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: repoRoot, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** Result files are named by the run's start time. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z');
}

/**
 * Runs the selected scenarios over the selected paths. Trials are interleaved across
 * paths (trial 1 of every path, then trial 2, …) so slow drift of the machine affects all
 * paths alike. Everything started is stopped by PID in `finally`, also on SIGINT.
 */
export async function runBench(o: RunOptions): Promise<{ result: RunResult; jsonPath: string; htmlPath: string }> {
  const started = new Date();
  const loadavgAtStart = os.loadavg();
  // The sweep's node pairs come from the paths: their workloads must be in the mesh config the first mesh node reads.
  const workers = o.paths.flatMap((p) => workersOf(p) ?? []);
  const bench: BenchOptions = workers.length > 0 ? { ...o.bench, workers } : o.bench;
  const session = openBenchSession({ prefix: 'ztunnel-ts-bench-', bench, keepTemp: o.keepTemp, progress: o.progress });
  const { server, loadgen, ctx } = session;
  const paths: PathRecord[] = [];
  const handles: PathHandle[] = [];
  const errors: TrialError[] = [];
  const raw: unknown[] = [];
  const peers: Record<string, string> = {};
  const defs = metricDefs(o.bounds, o.scenarios);
  const metrics: MetricResult[] = defs.map((metric) => ({ metric, trials: {}, summary: {}, vsDirect: {}, vsBestPeer: {} }));
  try {
    for (const id of o.paths) {
      const def = pathDef(id);
      const rec: PathRecord = { id, status: 'ok' };
      paths.push(rec);
      const av = await def.available(o.bench.baselineRoot ? { repoRoot: o.bench.repoRoot, baselineRoot: o.bench.baselineRoot } : { repoRoot: o.bench.repoRoot });
      if (!av.ok) {
        rec.status = 'absent';
        rec.reason = av.reason;
        o.progress(`path ${id}: absent (${av.reason})`);
        continue;
      }
      rec.version = av.version;
      if (id === 'haproxy' || id === 'stunnel') peers[id] = av.version;
      o.progress(`path ${id}: starting…`);
      try {
        const h = await def.start(ctx);
        rec.describe = h.describe;
        // A path that is up but does not carry traffic fails here, not in every trial.
        try {
          const probe = await loadgen.call<HoldResult>('hold', { entry: h.entry, conns: 1, concurrency: 1, maxMs: 15_000, maxErrors: 1 } satisfies HoldArgs, 30_000);
          await loadgen.call('release', null, 30_000);
          if (probe.opened !== 1) throw new Error(`no echo through the path: ${probe.errorSamples.join(' | ')}`);
        } catch (err) {
          await h.stop();
          throw err;
        }
        handles.push(h);
        o.progress(`path ${id}: ready — ${h.describe}`);
      } catch (err) {
        rec.status = 'failed';
        rec.reason = err instanceof Error ? err.message : String(err);
        o.progress(`path ${id}: FAILED to start — ${rec.reason}`);
      }
    }
    const t0 = Date.now();
    for (const sc of o.scenarios) {
      for (const step of scenarioSteps(sc, o.bounds)) {
        for (let trial = 1; trial <= o.trials; trial++) {
          for (const h of handles) {
            const allowed = PATH_SCENARIOS[h.id];
            if (allowed && !allowed.includes(sc)) continue;
            o.progress(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${sc} · ${step.name} · trial ${trial}/${o.trials} · ${h.id}`);
            const env: TrialEnv = { path: h, loadgen, server, bounds: o.bounds };
            try {
              const out = await step.run(env);
              raw.push({ scenario: sc, step: step.name, path: h.id, trial, ...(out.raw as object) });
              for (const [k, v] of Object.entries(out.values)) {
                const m = metrics.find((x) => x.metric.id === k);
                if (!m) continue;
                (m.trials[h.id] ??= []).push(v);
              }
            } catch (err) {
              const msg = err instanceof Error ? err.message : String(err);
              errors.push({ scenario: sc, path: h.id, trial, error: `${step.name}: ${msg}` });
              o.progress(`    ${h.id} trial ${trial} failed: ${msg.split('\n')[0]}`);
            }
          }
        }
      }
    }
  } finally {
    o.progress('stopping paths and children…');
    for (const h of handles) await h.stop().catch(() => undefined);
    await session.close(o.bench.cpuProf ? 15_000 : 3000);
  }
  for (const m of metrics) finishMetric(m);
  const sweep = workersSweep(metrics, o.paths);
  const cpus = os.cpus();
  const result: RunResult = {
    meta: {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      mode: o.mode,
      trials: o.trials,
      machine: { cores: cpus.length, cpuModel: cpus[0]?.model.trim() ?? 'unknown', memTotalBytes: os.totalmem(), kernel: os.release(), loadavgAtStart, loadavgAtEnd: os.loadavg() },
      node: process.version,
      gitCommit: gitCommit(o.bench.repoRoot),
      peers,
      bounds: o.bounds,
      options: { paths: o.paths, scenarios: o.scenarios, cpuProf: o.bench.cpuProf, meshLogLevel: o.bench.meshLogLevel, ...(workers.length > 0 ? { workers } : {}) },
    },
    paths,
    metrics: metrics.filter((m) => Object.keys(m.summary).length > 0),
    ...(sweep ? { sweep } : {}),
    errors,
    raw,
  };
  mkdirSync(o.outDir, { recursive: true });
  const base = path.join(o.outDir, stamp(started));
  const jsonPath = `${base}.json`;
  const htmlPath = `${base}.html`;
  writeFileSync(jsonPath, JSON.stringify(result, null, 2));
  writeFileSync(htmlPath, htmlReport(result));
  return { result, jsonPath, htmlPath };
}

export { terminalReport };
