import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { REASONS } from '../../../src/errors';

// The README's reason table is what operators read when a log line shows a code: every
// code must be there with its current hint, and the table must not list retired codes.
test('README lists every reason code with its flag and hint, and no other', (t) => {
  const readme = fs.readFileSync(path.resolve(__dirname, '../../../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Reason codes'), readme.indexOf('\n## ', readme.indexOf('## Reason codes') + 1));
  const rows = section.split('\n').filter((l) => /^\| `[A-Z0-9_]+` \|/.test(l));
  const documented = rows.map((l) => /^\| `([A-Z0-9_]+)`/.exec(l)![1]);
  t.deepEqual([...documented].sort(), Object.keys(REASONS).sort());
  for (const [code, r] of Object.entries(REASONS)) {
    const row = rows.find((l) => l.startsWith(`| \`${code}\` |`))!;
    t.true(row.includes(`\`${r.flag}\``), `${code} flag`);
    t.true(row.includes(r.hint), `${code} hint`);
  }
});
