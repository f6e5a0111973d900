import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../../..');

function runCheck(...dirs: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/check-cycles.js'), ...dirs], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the cycle check reports a cycle made only of type imports (invisible in the emitted JavaScript)', (t) => {
  const r = runCheck('test/fixtures/cycles');
  t.is(r.status, 1, r.stdout + r.stderr);
  t.regex(r.stderr, /cycle: test\/fixtures\/cycles\/a\.ts -> test\/fixtures\/cycles\/b\.ts -> test\/fixtures\/cycles\/a\.ts/);
});

test('the cycle check passes on the sources and reads every .ts file under src', (t) => {
  const r = runCheck('src');
  t.is(r.status, 0, r.stderr);
  const m = /src: (\d+) files, no cycles/.exec(r.stdout);
  t.truthy(m, r.stdout);
  const tsFiles = (fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  t.is(Number(m![1]), tsFiles.length, 'every source file is in the graph');
});
