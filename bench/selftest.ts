/**
 * `node dist/bench/selftest.js` — smoke run of the harness: the direct path with tiny
 * bounds (a few seconds), plus the pure helpers. It checks that every figure was
 * produced and the result files are well formed; it never asserts on timing.
 */
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { runBench } from './lib/harness';
import { TINY } from './scenarios';
import { summarize } from './lib/stats';
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
