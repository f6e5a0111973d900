import type { MetricResult, SweepFigure, WorkersSweep } from './results';
import { workersOf, type PathId } from '../paths/types';
import { fmtNum } from './stats';

/**
 * The figures worker counts change: bulk throughput and proxy CPU per GiB, request/response
 * p50 and p99, new connections per second and proxy CPU per new connection. p90 and p99.9
 * stay in the scenario tables.
 */
const SWEEP_FIGURE = /^(throughput-\d+|cpu-per-gib-\d+|latency-\d+-p(50|99)|connrate|connrate-cpu)$/;

function ratio(m: MetricResult, path: PathId, to: PathId): number | undefined {
  const a = m.summary[path]?.median;
  const b = m.summary[to]?.median;
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** Regroups the finished metrics by worker count; undefined when no `mesh-wN` path ran. */
export function workersSweep(metrics: readonly MetricResult[], paths: readonly PathId[]): WorkersSweep | undefined {
  const swept = paths.flatMap((path) => {
    const workers = workersOf(path);
    return workers === undefined ? [] : [{ path, workers }];
  });
  swept.sort((a, b) => a.workers - b.workers);
  const base = swept[0];
  if (!base) return undefined;
  const rows = swept.map(({ path, workers }) => ({
    workers,
    path,
    figures: metrics.flatMap((m): SweepFigure[] => {
      const s = m.summary[path];
      if (!s || !SWEEP_FIGURE.test(m.metric.id)) return [];
      const vsBase = ratio(m, path, base.path);
      const vsHaproxy = ratio(m, path, 'haproxy');
      const { id, scenario, label, unit, better } = m.metric;
      return [{ metric: id, scenario, label, unit, better, median: s.median, ...(vsBase === undefined ? {} : { vsBase }), ...(vsHaproxy === undefined ? {} : { vsHaproxy }) }];
    }),
  }));
  return { baseWorkers: base.workers, rows };
}

/** Header and cells of one worker count's table, shared by the terminal and the HTML report. */
export function sweepTable(s: WorkersSweep, row: WorkersSweep['rows'][number]): { readonly title: string; readonly head: readonly string[]; readonly cells: readonly string[][] } {
  const r = (x: number | undefined): string => (x === undefined ? '—' : x.toFixed(2));
  return {
    title: `workers=${row.workers} (${row.path})`,
    head: ['figure', 'unit', 'median', `×workers=${s.baseWorkers}`, '×haproxy'],
    cells: row.figures.map((f) => [`${f.better === 'higher' ? '↑' : '↓'} ${f.scenario}: ${f.label}`, f.unit, fmtNum(f.median), r(f.vsBase), r(f.vsHaproxy)]),
  };
}

/** Caption of the sweep section: what was varied and what the ratios are of. */
export function sweepCaption(s: WorkersSweep): string {
  return `workers sweep: ZTUNNEL_WORKER_THREADS=N in both mesh nodes, ratios of medians to workers=${s.baseWorkers} and to haproxy`;
}

/** How to read the sweep (bench/README.md explains what a machine with few cores can show). */
export const SWEEP_NOTE = '(CPU per GiB and per connection must stay flat across worker counts; throughput can rise only with cores no other process of the run is using)';
