import type { Entry } from '../lib/client';
import type { ProcessSet } from '../lib/proc';
import type { HostPort } from '../lib/net-util';
import type { DevPki } from '../lib/certs';

export type StaticPathId = 'direct' | 'haproxy' | 'stunnel' | 'mesh' | 'mesh-nopool' | 'passthrough' | 'mesh-base' | 'mesh-nopool-base';
/** The mesh path with `ZTUNNEL_WORKER_THREADS=N` in both nodes (`--workers`), one per worker count. */
export type WorkersPathId = `mesh-w${number}`;
export type PathId = StaticPathId | WorkersPathId;

export const workersPathId = (n: number): WorkersPathId => `mesh-w${n}`;
/** The worker count of a `mesh-wN` path; undefined for every other path. */
export function workersOf(id: PathId): number | undefined {
  const m = /^mesh-w(\d+)$/.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** The paths `--paths` can name; the `mesh-wN` paths come from `--workers`. */
export const ALL_PATHS: readonly StaticPathId[] = ['direct', 'haproxy', 'stunnel', 'mesh', 'mesh-nopool', 'passthrough', 'mesh-base', 'mesh-nopool-base'];
/** The mesh paths run from another build (`--baseline DIR`): only with that option. */
export const BASELINE_PATHS: readonly PathId[] = ['mesh-base', 'mesh-nopool-base'];
/** The non-ztunnel-ts proxies every figure is compared against. */
export const PEER_PATHS: readonly PathId[] = ['haproxy', 'stunnel'];

/** The bench server child: listeners on chosen addresses, sink byte counter. */
export interface BenchServer {
  listen(host: string): Promise<HostPort>;
}

export interface BenchOptions {
  readonly cpuProf: boolean;
  readonly profDir: string;
  /** LOG_LEVEL of the mesh proxies (access logs are info; the peers log nothing either). */
  readonly meshLogLevel: string;
  readonly repoRoot: string;
  /** Root of an earlier build (its dist/) for the `*-base` mesh paths, so today's and the new figures come from one run. */
  readonly baselineRoot?: string;
  /** Worker counts of the `--workers` sweep (set by the harness from its `mesh-wN` paths): one node pair each, whose workloads go into the mesh config. */
  readonly workers?: readonly number[];
}

export interface PathContext {
  readonly procs: ProcessSet;
  readonly server: BenchServer;
  /** Private temp directory of this run (configs, certs, logs). */
  readonly dir: string;
  readonly pki: DevPki;
  readonly opts: BenchOptions;
  /** Shared infrastructure between paths (the mesh CA and nodes), started once. */
  readonly shared: Map<string, Promise<unknown>>;
}

/** A started path: where the load goes in, what to measure, how to stop it. */
export interface PathHandle {
  readonly id: PathId;
  readonly entry: Entry;
  /** Proxy processes whose CPU and RSS the figures count (current PIDs: restarts change them). */
  pids(): number[];
  /** Restart the proxy processes (same addresses and config); absent when there are none. */
  restart?(): Promise<void>;
  /** Prometheus endpoints of the proxies (heap metrics), if any. */
  readonly metricsUrls: readonly string[];
  /** Human description of the hops for the report. */
  readonly describe: string;
  stop(): Promise<void>;
}

export type Availability = { readonly ok: true; readonly version: string } | { readonly ok: false; readonly reason: string };

export interface PathDef {
  readonly id: PathId;
  /** Whether the peer binary / command is present; an absent path is reported, not failed. */
  available(ctx: { repoRoot: string; baselineRoot?: string }): Promise<Availability>;
  start(ctx: PathContext): Promise<PathHandle>;
}
