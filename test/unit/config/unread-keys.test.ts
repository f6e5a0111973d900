import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tsFilesUnder, unreadConfigKeys } from '../../helpers/config-key-reads';

const ROOT = path.resolve(__dirname, '../../../..');
const isKeyFile = (f: string): boolean => /[/\\]src[/\\]config[/\\]keys-[^/\\]+\.ts$/.test(f);

test('every config key is read by production code (a setting nothing reads is a defect)', (t) => {
  t.timeout(240_000, 'type-checking every source file takes a while on a loaded machine');
  const { keys, unread } = unreadConfigKeys(tsFilesUnder(path.join(ROOT, 'src')), isKeyFile);
  t.true(keys.length > 80, `found only ${keys.length} key definitions: the key-set parser missed some`);
  t.deepEqual(
    unread.map((k) => `${k.set}.${k.field} (${k.env}, ${k.file})`),
    [],
    'these keys are defined but nothing in src/ reads them: wire them or delete them (and their docs)',
  );
});

// The analysis itself, on a small tree made here: it must follow reads through a spread, a
// Pick<> parameter of a helper, destructuring and element access, and still report the key
// that is only printed (Object.entries) and the one that is never touched.
test('the unread-key check follows helpers, spreads and destructuring, and reports an unread key', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unread-keys-'));
  const cfg = path.join(dir, 'src', 'config');
  fs.mkdirSync(cfg, { recursive: true });
  fs.writeFileSync(
    path.join(cfg, 'key.ts'),
    `export interface KeyDef<T> { env: string; parse: (s: string) => T }
export const key = <T>(d: KeyDef<T>): KeyDef<T> => d;
export type ConfigOf<K> = { readonly [P in keyof K]: K[P] extends KeyDef<infer T> ? T : never };
`,
  );
  fs.writeFileSync(
    path.join(cfg, 'keys-a.ts'),
    `import { key } from './key';
export const BASE = { shared: key({ env: 'SHARED', parse: Number }) } as const;
export const A_KEYS = {
  ...BASE,
  viaHelper: key({ env: 'VIA_HELPER', parse: String }),
  destructured: key({ env: 'DESTRUCTURED', parse: String }),
  indexed: key({ env: 'INDEXED', parse: String }),
  onlyPrinted: key({ env: 'ONLY_PRINTED', parse: String }),
  never: key({ env: 'NEVER', parse: String }),
  reused: BASE.shared,
} as const;
`,
  );
  fs.writeFileSync(
    path.join(dir, 'src', 'use.ts'),
    `import type { ConfigOf } from './config/key';
import { A_KEYS } from './config/keys-a';
type A = ConfigOf<typeof A_KEYS>;
function helper(c: Pick<A, 'viaHelper'>): string { return c.viaHelper; }
export function run(c: A): unknown {
  const { destructured } = c;
  for (const [k] of Object.entries(A_KEYS)) console.log(k);
  return [helper(c), destructured, c['indexed'], c.shared, c.reused];
}
`,
  );
  const { keys, unread } = unreadConfigKeys(tsFilesUnder(path.join(dir, 'src')), isKeyFile);
  fs.rmSync(dir, { recursive: true, force: true });
  t.is(keys.length, 7);
  t.deepEqual(unread.map((k) => k.env).sort(), ['NEVER', 'ONLY_PRINTED']);
});
