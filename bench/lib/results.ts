import type { PathId } from '../paths/types';
import type { Summary } from './stats';

export type ScenarioId = 'throughput' | 'latency' | 'connrate' | 'memory';
export const ALL_SCENARIOS: readonly ScenarioId[] = ['throughput', 'latency', 'connrate', 'memory'];

/** One figure a scenario produces, e.g. throughput over 8 connections. */
export interface MetricDef {
  readonly id: string;
  readonly scenario: ScenarioId;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
}

export interface PathRecord {
  readonly id: PathId;
  status: 'ok' | 'absent' | 'failed';
  version?: string;
  reason?: string;
  describe?: string;
}

export interface MetricResult {
  readonly metric: MetricDef;
  /** Trial values per path (failed trials are absent, their errors listed). */
  readonly trials: Partial<Record<PathId, number[]>>;
  summary: Partial<Record<PathId, Summary>>;
  vsDirect: Partial<Record<PathId, number>>;
  vsBestPeer: Partial<Record<PathId, number>>;
  bestPeer?: PathId;
}

export interface TrialError {
  readonly scenario: ScenarioId;
  readonly path: PathId;
  readonly trial: number;
  readonly error: string;
}

export interface RunMeta {
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly mode: 'quick' | 'full' | 'custom';
  readonly trials: number;
  readonly machine: { cores: number; cpuModel: string; memTotalBytes: number; kernel: string; loadavgAtStart: number[]; loadavgAtEnd?: number[] };
  readonly node: string;
  readonly gitCommit: string;
  readonly peers: Record<string, string>;
  readonly bounds: unknown;
  readonly options: unknown;
}

/** One figure of one worker count in the `--workers` sweep. */
export interface SweepFigure {
  readonly metric: string;
  readonly scenario: ScenarioId;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  readonly median: number;
  /** Ratio of medians to the sweep's smallest worker count (workers=1 when swept). */
  readonly vsBase?: number;
  readonly vsHaproxy?: number;
}

/** The `--workers` sweep: the same figures once per ZTUNNEL_WORKER_THREADS value. */
export interface WorkersSweep {
  readonly baseWorkers: number;
  readonly rows: readonly { readonly workers: number; readonly path: PathId; readonly figures: readonly SweepFigure[] }[];
}

export interface RunResult {
  readonly meta: RunMeta;
  readonly paths: PathRecord[];
  readonly metrics: MetricResult[];
  /** Present when the run swept worker counts (`--workers`). */
  readonly sweep?: WorkersSweep;
  readonly errors: TrialError[];
  /** Raw per-trial load-generator results, for anyone re-analysing a run. */
  readonly raw: unknown[];
}
