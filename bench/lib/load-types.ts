import type { Entry } from './client';

/** Arguments and results of the load generator's operations (shared by harness and child). */
export interface BulkArgs {
  readonly entry: Entry;
  readonly conns: number;
  readonly durationMs: number;
  readonly maxBytes: number;
  readonly chunkBytes: number;
}
export interface BulkResult {
  readonly written: number;
  readonly elapsedMs: number;
  readonly errors: number;
  readonly errorSamples: string[];
}

export interface LatencyArgs {
  readonly entry: Entry;
  readonly conns: number;
  readonly messageBytes: number;
  /** Measured round trips over all connections. */
  readonly maxMessages: number;
  readonly maxMs: number;
  /** Unrecorded round trips per connection first (JIT, pools, windows). */
  readonly warmupPerConn: number;
}
export interface LatencyResult {
  readonly count: number;
  readonly elapsedMs: number;
  readonly p50us: number;
  readonly p90us: number;
  readonly p99us: number;
  readonly p999us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  readonly errors: number;
  readonly errorSamples: string[];
}

export interface ConnRateArgs {
  readonly entry: Entry;
  readonly concurrency: number;
  readonly maxConns: number;
  readonly maxMs: number;
  readonly messageBytes: number;
  readonly maxErrors: number;
}
export interface ConnRateResult {
  readonly completed: number;
  readonly elapsedMs: number;
  readonly errors: number;
  readonly errorSamples: string[];
}

export interface HoldArgs {
  readonly entry: Entry;
  readonly conns: number;
  readonly concurrency: number;
  readonly maxMs: number;
  readonly maxErrors: number;
}
export interface HoldResult {
  readonly opened: number;
  readonly errors: number;
  readonly errorSamples: string[];
}
