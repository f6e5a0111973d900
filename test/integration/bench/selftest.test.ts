import test from 'ava';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

// Keeps the bench harness working in CI without timing anything: the selftest drives the
// direct path with tiny bounds and checks every figure and result file is produced (bench/selftest.ts).
test('bench harness selftest: direct path end to end, stats and profile summary', (t) => {
  const script = path.resolve(__dirname, '../../../bench/selftest.js');
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /bench selftest: ok/);
});
