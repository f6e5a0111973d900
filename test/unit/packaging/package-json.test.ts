import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; bin: Record<string, string> };

test('package.json main and bin name built files that exist', (t) => {
  for (const file of [pkg.main, ...Object.values(pkg.bin)]) t.true(fs.existsSync(path.join(ROOT, file)), `${file} exists after the build`);
});

test('requiring the package main runs nothing and exports the CLI entry point', (t) => {
  // What a user's `require('ztunnel-ts')` loads.
  const mod = require(path.join(ROOT, pkg.main)) as { main?: unknown; usage?: () => string };
  t.is(typeof mod.main, 'function');
  t.regex(mod.usage!(), /^usage: ztunnel-ts <command>/);
});
