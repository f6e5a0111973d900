import type { RpcClient } from './lib/ipc';
import type { PathHandle } from './paths/types';
import type { MetricDef, ScenarioId } from './lib/results';
import type { BulkArgs, BulkResult, LatencyArgs, LatencyResult, ConnRateArgs, ConnRateResult, HoldArgs, HoldResult } from './lib/load-types';
import { sampleProcs } from './lib/proc';
import { httpGet, proxyHeapBytes, sleep } from './lib/net-util';

/** Every bound of a run; `quick` and `full` are the two presets. */
export interface Bounds {
  readonly throughput: { readonly warmMs: number; readonly measureMs: number; readonly maxBytes: number; readonly conns: readonly number[] };
  readonly latency: { readonly conns: readonly number[]; readonly maxMessages: number; readonly maxMs: number; readonly warmupPerConn: number; readonly messageBytes: number };
  readonly connrate: { readonly concurrency: number; readonly maxConns: number; readonly maxMs: number; readonly messageBytes: number };
  readonly memory: { readonly conns: number; readonly concurrency: number; readonly maxMs: number; readonly settleMs: number };
}

export const QUICK: Bounds = {
  throughput: { warmMs: 500, measureMs: 2500, maxBytes: 64 * 2 ** 30, conns: [1, 8] },
  latency: { conns: [1, 16], maxMessages: 8000, maxMs: 2000, warmupPerConn: 50, messageBytes: 1024 },
  connrate: { concurrency: 8, maxConns: 3000, maxMs: 2000, messageBytes: 1024 },
  memory: { conns: 1000, concurrency: 50, maxMs: 60_000, settleMs: 1000 },
};

export const FULL: Bounds = {
  throughput: { warmMs: 1000, measureMs: 15_000, maxBytes: 512 * 2 ** 30, conns: [1, 8] },
  latency: { conns: [1, 16], maxMessages: 100_000, maxMs: 10_000, warmupPerConn: 200, messageBytes: 1024 },
  connrate: { concurrency: 16, maxConns: 30_000, maxMs: 10_000, messageBytes: 1024 },
  memory: { conns: 5000, concurrency: 100, maxMs: 180_000, settleMs: 2000 },
};

/** Bounds for the harness selftest: seconds in total, direct path only. */
export const TINY: Bounds = {
  throughput: { warmMs: 100, measureMs: 300, maxBytes: 2 ** 30, conns: [1, 2] },
  latency: { conns: [1, 2], maxMessages: 200, maxMs: 500, warmupPerConn: 5, messageBytes: 1024 },
  connrate: { concurrency: 2, maxConns: 50, maxMs: 500, messageBytes: 1024 },
  memory: { conns: 20, concurrency: 5, maxMs: 5000, settleMs: 100 },
};

export function metricDefs(b: Bounds, scenarios: readonly ScenarioId[]): MetricDef[] {
  const out: MetricDef[] = [];
  if (scenarios.includes('throughput')) {
    for (const c of b.throughput.conns) out.push({ id: `throughput-${c}`, scenario: 'throughput', label: `bulk ${c} conn${c > 1 ? 's' : ''}`, unit: 'MB/s', better: 'higher' });
    for (const c of b.throughput.conns) out.push({ id: `cpu-per-gib-${c}`, scenario: 'throughput', label: `proxy CPU, ${c} conn${c > 1 ? 's' : ''}`, unit: 'CPU s/GiB', better: 'lower' });
  }
  if (scenarios.includes('latency')) {
    for (const c of b.latency.conns) {
      for (const p of ['p50', 'p90', 'p99', 'p999'] as const) {
        out.push({ id: `latency-${c}-${p}`, scenario: 'latency', label: `${c} conn${c > 1 ? 's' : ''} ${p === 'p999' ? 'p99.9' : p}`, unit: 'µs', better: 'lower' });
      }
    }
  }
  if (scenarios.includes('connrate')) out.push({ id: 'connrate', scenario: 'connrate', label: `new conns, ${b.connrate.concurrency} in flight`, unit: 'conn/s', better: 'higher' });
  if (scenarios.includes('connrate')) out.push({ id: 'connrate-cpu', scenario: 'connrate', label: 'proxy CPU per new conn', unit: 'CPU ms/conn', better: 'lower' });
  if (scenarios.includes('memory')) {
    out.push({ id: 'mem-rss-per-conn', scenario: 'memory', label: `proxy RSS / idle conn (${b.memory.conns})`, unit: 'KiB/conn', better: 'lower' });
    out.push({ id: 'mem-heap-per-conn', scenario: 'memory', label: `proxy JS heap / idle conn (${b.memory.conns})`, unit: 'KiB/conn', better: 'lower' });
  }
  return out;
}

export interface TrialEnv {
  readonly path: PathHandle;
  readonly loadgen: RpcClient;
  readonly server: RpcClient;
  readonly bounds: Bounds;
}

export interface TrialOutput {
  readonly values: Record<string, number>;
  readonly raw: unknown;
}

/** Connections opened and closed before the memory baseline. */
const MEMORY_WARM_CONNS = 20;

interface Count {
  readonly bytes: number;
  readonly atMs: number;
}

function checkErrors(what: string, r: { errors: number; errorSamples: string[] }): void {
  if (r.errors > 0) throw new Error(`${what}: ${r.errors} error(s): ${r.errorSamples.join(' | ')}`);
}

/** Bulk upload for warm+measure; bytes counted at the server, CPU of the proxies around it. */
async function throughputTrial(env: TrialEnv, conns: number): Promise<TrialOutput> {
  const b = env.bounds.throughput;
  const args: BulkArgs = { entry: env.path.entry, conns, durationMs: b.warmMs + b.measureMs + 300, maxBytes: b.maxBytes, chunkBytes: 128 * 1024 };
  const bulkP = env.loadgen.call<BulkResult>('bulk', args, args.durationMs + 30_000);
  // Keep the rejection observed even while we sleep.
  bulkP.catch(() => undefined);
  await sleep(b.warmMs);
  const c0 = await env.server.call<Count>('count', null, 5000);
  const p0 = sampleProcs(env.path.pids());
  await sleep(b.measureMs);
  const c1 = await env.server.call<Count>('count', null, 5000);
  const p1 = sampleProcs(env.path.pids());
  const bulk = await bulkP;
  checkErrors('bulk', bulk);
  const bytes = c1.bytes - c0.bytes;
  const secs = (c1.atMs - c0.atMs) / 1000;
  if (bytes <= 0) throw new Error('no bytes reached the server during the measurement window');
  const values: Record<string, number> = { [`throughput-${conns}`]: bytes / secs / 1e6 };
  if (env.path.pids().length > 0) values[`cpu-per-gib-${conns}`] = (p1.cpuSeconds - p0.cpuSeconds) / (bytes / 2 ** 30);
  return { values, raw: { bytes, secs, proxyCpuSeconds: p1.cpuSeconds - p0.cpuSeconds, bulk } };
}

async function latencyTrial(env: TrialEnv, conns: number): Promise<TrialOutput> {
  const b = env.bounds.latency;
  const args: LatencyArgs = { entry: env.path.entry, conns, messageBytes: b.messageBytes, maxMessages: b.maxMessages, maxMs: b.maxMs, warmupPerConn: b.warmupPerConn };
  const r = await env.loadgen.call<LatencyResult>('latency', args, b.maxMs + 60_000);
  checkErrors('latency', r);
  if (r.count === 0) throw new Error('no round trip completed');
  return { values: { [`latency-${conns}-p50`]: r.p50us, [`latency-${conns}-p90`]: r.p90us, [`latency-${conns}-p99`]: r.p99us, [`latency-${conns}-p999`]: r.p999us }, raw: r };
}

async function connRateTrial(env: TrialEnv): Promise<TrialOutput> {
  const b = env.bounds.connrate;
  const args: ConnRateArgs = { entry: env.path.entry, concurrency: b.concurrency, maxConns: b.maxConns, maxMs: b.maxMs, messageBytes: b.messageBytes, maxErrors: 20 };
  const p0 = sampleProcs(env.path.pids());
  const r = await env.loadgen.call<ConnRateResult>('connrate', args, b.maxMs + 60_000);
  const p1 = sampleProcs(env.path.pids());
  checkErrors('connrate', r);
  const values: Record<string, number> = { connrate: r.completed / (r.elapsedMs / 1000) };
  // The per-connection cost itself: far less sensitive to the neighbours' load than the rate.
  if (env.path.pids().length > 0 && r.completed > 0) values['connrate-cpu'] = ((p1.cpuSeconds - p0.cpuSeconds) * 1000) / r.completed;
  return { values, raw: r };
}

/** JS heap in use summed over the proxies' /metrics, every data-path thread's (null if any proxy lacks it). */
async function heapUsed(urls: readonly string[]): Promise<number | null> {
  let sum = 0;
  for (const u of urls) {
    try {
      const r = await httpGet(u, 3000);
      const v = proxyHeapBytes(r.body);
      if (v === null) return null;
      sum += v;
    } catch {
      return null;
    }
  }
  return sum;
}

async function waitServerDrained(env: TrialEnv, baseline: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const c = await env.server.call<{ open: number }>('conns', null, 5000);
    if (c.open <= baseline) return;
    await sleep(100);
  }
}

/** Hold N idle proxied connections; the proxies' RSS and heap growth per connection. */
async function memoryTrial(env: TrialEnv): Promise<TrialOutput> {
  const b = env.bounds.memory;
  if (env.path.pids().length === 0) return { values: {}, raw: { note: 'no proxy process on this path' } };
  // A fresh process per trial (freed memory from earlier trials would be reused and hide
  // the cost), warmed by a few connections so one-time JIT and pool set-up are not counted.
  if (env.path.restart) await env.path.restart();
  const base = await env.server.call<{ open: number }>('conns', null, 5000);
  const warm = await env.loadgen.call<HoldResult>('hold', { entry: env.path.entry, conns: MEMORY_WARM_CONNS, concurrency: MEMORY_WARM_CONNS, maxMs: b.maxMs, maxErrors: 5 } satisfies HoldArgs, b.maxMs + 30_000);
  await env.loadgen.call('release', null, 60_000);
  checkErrors('warm-up hold', warm);
  await waitServerDrained(env, base.open, 15_000);
  await sleep(b.settleMs);
  const rss0 = sampleProcs(env.path.pids()).rssBytes;
  const heap0 = await heapUsed(env.path.metricsUrls);
  const args: HoldArgs = { entry: env.path.entry, conns: b.conns, concurrency: b.concurrency, maxMs: b.maxMs, maxErrors: 20 };
  try {
    const h = await env.loadgen.call<HoldResult>('hold', args, b.maxMs + 30_000);
    checkErrors('hold', h);
    await sleep(b.settleMs);
    const rss1 = sampleProcs(env.path.pids()).rssBytes;
    const heap1 = await heapUsed(env.path.metricsUrls);
    const values: Record<string, number> = { 'mem-rss-per-conn': (rss1 - rss0) / h.opened / 1024 };
    if (heap0 !== null && heap1 !== null && env.path.metricsUrls.length > 0) values['mem-heap-per-conn'] = (heap1 - heap0) / h.opened / 1024;
    return { values, raw: { opened: h.opened, rss0, rss1, heap0, heap1 } };
  } finally {
    await env.loadgen.call('release', null, 60_000);
    await waitServerDrained(env, base.open, 15_000);
  }
}

/** The trials one scenario runs per path and trial index, in order. */
export function scenarioSteps(id: ScenarioId, b: Bounds): { readonly name: string; readonly run: (env: TrialEnv) => Promise<TrialOutput> }[] {
  switch (id) {
    case 'throughput':
      return b.throughput.conns.map((c) => ({ name: `bulk ${c}c`, run: (env: TrialEnv) => throughputTrial(env, c) }));
    case 'latency':
      return b.latency.conns.map((c) => ({ name: `rr ${c}c`, run: (env: TrialEnv) => latencyTrial(env, c) }));
    case 'connrate':
      return [{ name: 'connrate', run: connRateTrial }];
    case 'memory':
      return [{ name: 'idle conns', run: memoryTrial }];
  }
}
