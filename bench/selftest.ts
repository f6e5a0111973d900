/**
 * `node dist/bench/selftest.js` — smoke run of the harness: the direct path with tiny
 * bounds (a few seconds), plus the pure helpers. It checks that every figure was
 * produced and the result files are well formed; it never asserts on timing.
 */
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { pathDef, runBench } from './lib/harness';
import { TINY } from './scenarios';
import { parseBenchArgs } from './lib/args';
import { finishMetric, htmlReport, terminalReport } from './lib/report';
import { workersSweep } from './lib/sweep';
import type { MetricResult } from './lib/results';
import { summarize } from './lib/stats';
import { promSum, promValue, proxyHeapBytes } from './lib/net-util';
import { summarizeProfile } from './profile-summary';
import { ALL_SCENARIOS, type RunResult } from './lib/results';
import { slopePerHour, soakHtml, soakTerminal } from './lib/soak-report';
import type { SoakResult, SoakSample } from './soak';

function checkStats(): void {
  const s = summarize([5, 1, 3, Number.NaN]);
  assert.deepEqual(s, { n: 3, median: 3, min: 1, max: 5, q1: 1, q3: 5 });
  const t = summarize([1, 2, 3, 4, 5]);
  assert.equal(t?.median, 3);
  assert.equal(t?.q1, 2);
  assert.equal(t?.q3, 4);
  assert.equal(summarize([]), null);
}

function checkProfileSummary(): void {
  // root → a → b; samples: b, b, a, (idle); deltas give b 30µs+..., a, idle.
  const prof = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1, columnNumber: -1 }, children: [2, 4] },
      { id: 2, callFrame: { functionName: 'a', url: 'file:///x/dist/src/a.js', lineNumber: 0, columnNumber: 0 }, children: [3] },
      { id: 3, callFrame: { functionName: 'b', url: 'file:///x/dist/src/b.js', lineNumber: 9, columnNumber: 4 } },
      { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1, columnNumber: -1 } },
    ],
    startTime: 0,
    endTime: 100,
    samples: [3, 3, 2, 4],
    timeDeltas: [0, 1000, 2000, 4000, 0],
  };
  const { rows, totalMs, idleMs } = summarizeProfile(prof);
  assert.equal(totalMs, 7);
  assert.equal(idleMs, 0);
  const b = rows.find((r) => r.name === 'b');
  const a = rows.find((r) => r.name === 'a');
  assert.equal(b?.selfMs, 3);
  assert.equal(b?.location, 'dist/src/b.js:10:5');
  assert.equal(a?.selfMs, 4);
  assert.equal(a?.totalMs, 7);
}

/** The soak's report on synthetic samples: exact slopes of linear series, warm-up excluded by the caller, chart and summary rendered. */
function checkSoakReport(): void {
  const sample = (t: number, rss: number): SoakSample => ({
    t,
    load1: 1,
    proxies: [
      { rssMiB: rss, heapMiB: 10, fds: 30, loopP99Ms: 2, loopMaxMs: 5 },
      { rssMiB: rss, heapMiB: 10, fds: 30, loopP99Ms: 2, loopMaxMs: 5 },
    ],
    rrCount: 100,
    rrP99us: 500,
    conns: 40,
    connsPerSec: 4,
    bulkMBps: 10,
    errors: 0,
    errorSamples: [],
  });
  // RSS grows 1 MiB per 10 s per proxy: 360 MiB/h each.
  const samples = [10, 20, 30, 40].map((t) => sample(t, 100 + t / 10));
  assert.equal(Math.round(slopePerHour(samples, (s) => s.proxies[0]!.rssMiB)), 360);
  assert.equal(slopePerHour(samples, (s) => s.proxies[0]!.fds ?? 0), 0);
  assert.equal(slopePerHour(samples.slice(0, 1), (s) => s.rrP99us), 0);
  const r: SoakResult = {
    meta: { startedAt: 'x', finishedAt: 'y', minutes: 1, windowMs: 10_000, machine: 'm', node: process.version, describe: 'd', mix: 'mix' },
    samples,
    slopes: { 'rss MiB/h': 720 },
    failed: 0,
  };
  const text = soakTerminal(r);
  assert.match(text, /rss MiB\/h 720\.00/);
  assert.match(text, /400 round trips, 160 churned connections/);
  assert.match(text, /failed connections\/exchanges: 0/);
  const html = soakHtml(r);
  assert.equal((html.match(/<svg/g) ?? []).length, 8, 'one chart per series');
  assert.ok(html.includes('<polyline') && !/\b(src|href)="http/.test(html), 'inline SVG lines, no external assets');
}

/** Heap figures from /metrics: Node's main-thread family, or every data-path thread's when the node reports them. */
function checkHeapMetrics(): void {
  const single = '# HELP nodejs_heap_size_used_bytes x\nnodejs_heap_size_used_bytes 1000\n';
  const threaded = `${single}ztunnel_ts_thread_heap_used_bytes{thread="0"} 1000\nztunnel_ts_thread_heap_used_bytes{thread="1"} 250\n`;
  assert.equal(proxyHeapBytes(single), 1000);
  assert.equal(proxyHeapBytes(threaded), 1250);
  assert.equal(promSum(threaded, 'ztunnel_ts_thread_heap_used_bytes'), 1250);
  assert.equal(promValue(threaded, 'ztunnel_ts_thread_heap_used_bytes'), 1000);
  assert.equal(promSum(single, 'ztunnel_ts_thread_heap_used_bytes'), null);
  assert.equal(proxyHeapBytes('other 1\n'), null);
}

/** The command line: defaults unchanged without --workers; the sweep's paths, scenarios and bad counts. */
function checkArgs(): void {
  const root = '/repo';
  const plain = parseBenchArgs([], root);
  assert.deepEqual(plain.paths, ['direct', 'haproxy', 'stunnel', 'mesh', 'mesh-nopool', 'passthrough']);
  assert.deepEqual(plain.scenarios, ['throughput', 'latency', 'connrate', 'memory']);
  assert.equal(plain.workers, undefined);
  assert.equal(plain.outDir, path.join(root, 'bench', 'results'));
  const sweep = parseBenchArgs(['--workers', '2,1', '--trials', '1'], root);
  assert.deepEqual(sweep.workers, [1, 2]);
  assert.deepEqual(sweep.paths, ['direct', 'haproxy', 'mesh-w1', 'mesh-w2']);
  assert.deepEqual(sweep.scenarios, ['throughput', 'latency', 'connrate']);
  assert.equal(sweep.trials, 1);
  const chosen = parseBenchArgs(['--scenarios=throughput', '--workers=4,1,4', '--paths', 'stunnel,mesh'], root);
  assert.deepEqual(chosen.paths, ['direct', 'stunnel', 'mesh', 'mesh-w1', 'mesh-w4']);
  assert.deepEqual(chosen.scenarios, ['throughput']);
  for (const [argv, msg] of [
    [['--workers'], /--workers needs a value/],
    [['--workers', '0'], /"0" is not a worker count 1\.\.16/],
    [['--workers', '1,x'], /"x" is not a worker count/],
    [['--workers', '17'], /"17" is not a worker count/],
    [['--workers', '1.5'], /"1\.5" is not a worker count/],
    [['--workers', ','], /at least one worker count/],
    [['--workers', '2', '--soak'], /--workers sweeps the suite/],
    [['--paths', 'mesh-w2'], /--paths: unknown "mesh-w2"/],
  ] as const) {
    assert.throws(() => parseBenchArgs(argv, root), msg);
  }
  assert.equal(pathDef('mesh-w3').id, 'mesh-w3');
  assert.equal(pathDef('haproxy').id, 'haproxy');
}

/** The workers sweep's regrouping, ratios and rendering on synthetic trials (no timing). */
function checkSweepReport(): void {
  const metric = (id: string, better: 'higher' | 'lower', trials: MetricResult['trials']): MetricResult => {
    const m: MetricResult = { metric: { id, scenario: 'throughput', label: id, unit: 'u', better }, trials, summary: {}, vsDirect: {}, vsBestPeer: {} };
    finishMetric(m);
    return m;
  };
  const metrics = [
    metric('throughput-1', 'higher', { direct: [400], haproxy: [100], 'mesh-w1': [50, 40, 60], 'mesh-w2': [75] }),
    metric('cpu-per-gib-1', 'lower', { haproxy: [1], 'mesh-w1': [2], 'mesh-w2': [2] }),
    metric('latency-1-p90', 'lower', { haproxy: [1], 'mesh-w1': [2], 'mesh-w2': [2] }),
  ];
  assert.equal(workersSweep(metrics, ['direct', 'haproxy']), undefined, 'no sweep without mesh-wN paths');
  const sweep = workersSweep(metrics, ['direct', 'haproxy', 'mesh-w2', 'mesh-w1']);
  assert.ok(sweep);
  assert.equal(sweep.baseWorkers, 1);
  assert.deepEqual(sweep.rows.map((r) => [r.workers, r.path, r.figures.map((f) => f.metric)]), [
    [1, 'mesh-w1', ['throughput-1', 'cpu-per-gib-1']],
    [2, 'mesh-w2', ['throughput-1', 'cpu-per-gib-1']],
  ]);
  assert.deepEqual(sweep.rows[1]!.figures.map((f) => [f.median, f.vsBase, f.vsHaproxy]), [[75, 1.5, 0.75], [2, 1, 2]]);
  const r: RunResult = {
    meta: { startedAt: 's', mode: 'custom', trials: 1, machine: { cores: 2, cpuModel: 'm', memTotalBytes: 1, kernel: 'k', loadavgAtStart: [0] }, node: process.version, gitCommit: 'g', peers: {}, bounds: {}, options: {} },
    paths: [],
    metrics,
    sweep,
    errors: [],
    raw: [],
  };
  const text = terminalReport(r);
  assert.match(text, /-- workers=2 \(mesh-w2\) --\n.*×workers=1 +×haproxy\n↑ throughput: throughput-1 +u +75\.00 +1\.50 +0\.75\n↓ throughput: cpu-per-gib-1 +u +2\.00 +1\.00 +2\.00/);
  const html = htmlReport(r);
  assert.equal((html.match(/<table>/g) ?? []).length, 2, 'one table per worker count');
  assert.match(html, /<caption>workers=1 \(mesh-w1\)<\/caption>/);
  assert.match(html, /fill="hsl\(/, 'sweep paths get their own bar colour');
}

async function checkDirectRun(): Promise<void> {
  const out = mkdtempSync(path.join(os.tmpdir(), 'ztunnel-ts-bench-selftest-'));
  try {
    const { result, jsonPath, htmlPath } = await runBench({
      mode: 'custom',
      bounds: TINY,
      trials: 2,
      paths: ['direct'],
      scenarios: ALL_SCENARIOS,
      outDir: out,
      keepTemp: false,
      bench: { cpuProf: false, profDir: path.join(out, 'prof'), meshLogLevel: 'error', repoRoot: path.resolve(__dirname, '..', '..') },
      progress: () => undefined,
    });
    assert.deepEqual(result.errors, [], 'no trial failed');
    assert.equal(result.paths[0]?.status, 'ok');
    const figures = result.metrics.map((m) => m.metric.id).sort();
    // Direct has no proxy process: no CPU or memory figures, everything else present.
    assert.deepEqual(figures, ['connrate', 'latency-1-p50', 'latency-1-p90', 'latency-1-p99', 'latency-1-p999', 'latency-2-p50', 'latency-2-p90', 'latency-2-p99', 'latency-2-p999', 'throughput-1', 'throughput-2'].sort());
    for (const m of result.metrics) {
      const s = m.summary.direct;
      assert.ok(s && s.n === 2 && s.median > 0, `${m.metric.id} has two positive trials`);
      assert.equal(m.vsDirect.direct, 1);
    }
    const parsed = JSON.parse(readFileSync(jsonPath, 'utf8')) as RunResult;
    assert.equal(parsed.meta.machine.cores, os.cpus().length);
    const html = readFileSync(htmlPath, 'utf8');
    assert.ok(html.includes('<svg') && !/\b(src|href)="http/.test(html), 'inline SVG, no external assets');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  checkStats();
  checkProfileSummary();
  checkSoakReport();
  checkArgs();
  checkSweepReport();
  checkHeapMetrics();
  await checkDirectRun();
  process.stdout.write('bench selftest: ok\n');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench selftest FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
