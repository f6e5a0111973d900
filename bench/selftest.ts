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
