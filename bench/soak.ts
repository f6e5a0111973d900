import os from 'node:os';
import path from 'node:path';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { sampleProc } from './lib/proc';
import { openBenchSession } from './lib/session';
import { httpGet, promValue, proxyHeapBytes } from './lib/net-util';
import type { BulkArgs, BulkResult, ConnRateArgs, ConnRateResult, HoldArgs, HoldResult, LatencyArgs, LatencyResult } from './lib/load-types';
import { soakHtml, soakTerminal, slopePerHour } from './lib/soak-report';
import { mesh } from './paths/mesh';
import type { BenchOptions } from './paths/types';

/** One 10-second window of the soak: what the load did and what the proxies looked like at its end. */
export interface SoakSample {
  /** Seconds since the load started (end of the window). */
  readonly t: number;
  /** `uptime` load average (1 min) of the machine at the end of the window. */
  readonly load1: number;
  /** Per proxy process (node A, node B): resident set, JS heap used, open fds, event-loop delay p99 / max over the window. */
  readonly proxies: readonly { readonly rssMiB: number; readonly heapMiB: number | null; readonly fds: number | null; readonly loopP99Ms: number | null; readonly loopMaxMs: number | null }[];
  /** Request/response round trips in the window, and their p99. */
  readonly rrCount: number;
  readonly rrP99us: number;
  /** New application connections completed in the window (open, 1 KiB request/response, close), and their rate. */
  readonly conns: number;
  readonly connsPerSec: number;
  /** Bulk upload rate over the window. */
  readonly bulkMBps: number;
  /** Failed connections or exchanges in this window, over all three loads. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
}

export interface SoakResult {
  readonly meta: { readonly startedAt: string; readonly finishedAt: string; readonly minutes: number; readonly windowMs: number; readonly machine: string; readonly node: string; readonly describe: string; readonly mix: string };
  readonly samples: SoakSample[];
  /** Least-squares slopes per hour over the samples after the warm-up (first minute). */
  readonly slopes: Record<string, number>;
  readonly failed: number;
}

export interface SoakOptions {
  readonly minutes: number;
  readonly windowMs: number;
  readonly outDir: string;
  readonly keepTemp: boolean;
  readonly bench: BenchOptions;
  readonly progress: (line: string) => void;
}

/**
 * The load of one window, all three at once through the same two node proxies: a bounded
 * bulk upload (so the CPU is not pegged and the other two loads still measure something),
 * request/response on a few long-lived connections, and connection churn.
 */
const MIX = { bulkConns: 1, bulkBytesPerWindow: 128 * 2 ** 20, rrConns: 4, churnConcurrency: 4, messageBytes: 1024 };

/** Samples before this many seconds are warm-up (JIT, pools, first GCs) and stay out of the slopes. */
const WARMUP_S = 60;

function fdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

async function promSample(url: string): Promise<{ heap: number | null; p99: number | null; max: number | null }> {
  try {
    const body = (await httpGet(url, 3000)).body;
    return { heap: proxyHeapBytes(body), p99: promValue(body, 'nodejs_eventloop_lag_p99_seconds'), max: promValue(body, 'nodejs_eventloop_lag_max_seconds') };
  } catch {
    return { heap: null, p99: null, max: null };
  }
}

/**
 * `npm run bench -- --soak [--soak-minutes N]`: mixed traffic through the mesh path (client
 * → node A → HBONE → node B → server) for N minutes (bounded), one sample per window.
 * Everything started is stopped by PID at the end, also on SIGINT.
 */
export async function runSoak(o: SoakOptions): Promise<{ result: SoakResult; jsonPath: string; htmlPath: string }> {
  const started = new Date();
  const session = openBenchSession({ prefix: 'ztunnel-ts-soak-', bench: o.bench, keepTemp: o.keepTemp, progress: o.progress });
  const { loadgen, ctx } = session;
  const samples: SoakSample[] = [];
  let describe = '';
  try {
    o.progress('soak: starting the mesh path…');
    const h = await mesh.start(ctx);
    describe = h.describe;
    const probe = await loadgen.call<HoldResult>('hold', { entry: h.entry, conns: 1, concurrency: 1, maxMs: 15_000, maxErrors: 1 } satisfies HoldArgs, 30_000);
    await loadgen.call('release', null, 30_000);
    if (probe.opened !== 1) throw new Error(`no echo through the mesh path: ${probe.errorSamples.join(' | ')}`);
    o.progress(`soak: ${o.minutes} min, a sample every ${o.windowMs / 1000} s — ${h.describe}`);
    // Reset the event-loop histograms so the first window measures only itself.
    for (const u of h.metricsUrls) await promSample(u);
    const t0 = Date.now();
    const end = t0 + o.minutes * 60_000;
    while (Date.now() + o.windowMs / 2 < end) {
      const w = o.windowMs;
      const bulkArgs: BulkArgs = { entry: h.entry, conns: MIX.bulkConns, durationMs: w, maxBytes: MIX.bulkBytesPerWindow, chunkBytes: 128 * 1024 };
      const rrArgs: LatencyArgs = { entry: h.entry, conns: MIX.rrConns, messageBytes: MIX.messageBytes, maxMessages: 10_000_000, maxMs: w, warmupPerConn: 5 };
      const churnArgs: ConnRateArgs = { entry: h.entry, concurrency: MIX.churnConcurrency, maxConns: 10_000_000, maxMs: w, messageBytes: MIX.messageBytes, maxErrors: 1000 };
      const ws = Date.now();
      const [bulk, rr, churn] = await Promise.all([
        loadgen.call<BulkResult>('bulk', bulkArgs, w + 30_000),
        loadgen.call<LatencyResult>('latency', rrArgs, w + 30_000),
        loadgen.call<ConnRateResult>('connrate', churnArgs, w + 30_000),
      ]);
      // The bulk load stops early once its byte budget is spent; its rate is over the whole window.
      const windowS = Math.max(1, Date.now() - ws) / 1000;
      const proxies = [];
      const pids = h.pids();
      for (let i = 0; i < pids.length; i++) {
        const p = sampleProc(pids[i]!);
        const m = h.metricsUrls[i] ? await promSample(h.metricsUrls[i]!) : { heap: null, p99: null, max: null };
        proxies.push({
          rssMiB: p ? p.rssBytes / 2 ** 20 : 0,
          heapMiB: m.heap === null ? null : m.heap / 2 ** 20,
          fds: fdCount(pids[i]!),
          loopP99Ms: m.p99 === null ? null : m.p99 * 1000,
          loopMaxMs: m.max === null ? null : m.max * 1000,
        });
      }
      const errorSamples = [...bulk.errorSamples, ...rr.errorSamples, ...churn.errorSamples].slice(0, 5);
      const s: SoakSample = {
        t: (Date.now() - t0) / 1000,
        load1: os.loadavg()[0]!,
        proxies,
        rrCount: rr.count,
        rrP99us: rr.p99us,
        conns: churn.completed,
        connsPerSec: churn.completed / (churn.elapsedMs / 1000),
        bulkMBps: bulk.written / windowS / 1e6,
        errors: bulk.errors + rr.errors + churn.errors,
        errorSamples,
      };
      samples.push(s);
      o.progress(
        `[${s.t.toFixed(0).padStart(5)}s] load ${s.load1.toFixed(1)} · RSS ${proxies.map((p) => p.rssMiB.toFixed(1)).join('+')} MiB · heap ${proxies.map((p) => p.heapMiB?.toFixed(1) ?? '?').join('+')} MiB · fds ${proxies.map((p) => p.fds ?? '?').join('+')} · loop p99 ${proxies.map((p) => p.loopP99Ms?.toFixed(1) ?? '?').join('/')} ms · rr p99 ${s.rrP99us} µs · ${s.connsPerSec.toFixed(0)} conn/s · bulk ${s.bulkMBps.toFixed(1)} MB/s · errors ${s.errors}`,
      );
    }
  } finally {
    o.progress('soak: stopping…');
    await session.close(o.bench.cpuProf ? 15_000 : 3000);
  }
  const steady = samples.filter((s) => s.t >= WARMUP_S);
  const sum = (f: (s: SoakSample) => number | null): ((s: SoakSample) => number) => (s) => f(s) ?? 0;
  const slopes: Record<string, number> = {
    'rss MiB/h': slopePerHour(steady, sum((s) => s.proxies.reduce((a, p) => a + p.rssMiB, 0))),
    'heap MiB/h': slopePerHour(steady, sum((s) => s.proxies.reduce((a, p) => a + (p.heapMiB ?? 0), 0))),
    'fds /h': slopePerHour(steady, sum((s) => s.proxies.reduce((a, p) => a + (p.fds ?? 0), 0))),
    'rr p99 µs/h': slopePerHour(steady, (s) => s.rrP99us),
  };
  const cpus = os.cpus();
  const result: SoakResult = {
    meta: {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      minutes: o.minutes,
      windowMs: o.windowMs,
      machine: `${cpus.length} cores ${cpus[0]?.model.trim() ?? 'unknown'}, ${os.release()}`,
      node: process.version,
      describe,
      mix: `bulk ${MIX.bulkConns} conn ≤ ${MIX.bulkBytesPerWindow / 2 ** 20} MiB per window; request/response ${MIX.messageBytes} B on ${MIX.rrConns} conns; connection churn ${MIX.churnConcurrency} in flight`,
    },
    samples,
    slopes,
    failed: samples.reduce((a, s) => a + s.errors, 0),
  };
  mkdirSync(o.outDir, { recursive: true });
  const base = path.join(o.outDir, `soak-${started.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z')}`);
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2));
  writeFileSync(`${base}.html`, soakHtml(result));
  return { result, jsonPath: `${base}.json`, htmlPath: `${base}.html` };
}

export { soakTerminal };
