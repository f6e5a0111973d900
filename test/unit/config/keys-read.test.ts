import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KeyDef, KeySet } from '../../../src/config/key';

/**
 * A setting nothing reads is a defect: every key of every command's key set (a set some
 * `loadConfig(SET, …)` loads) must be read by code that works with that command's config.
 * "Code of a set" is every source file that names the set, a set spread into it (shared
 * building blocks such as COMMON_KEYS), or a type alias of either (`ConfigOf<typeof SET>`);
 * a read is `c.<field>`, `config.<field>` or destructuring of `c`/`config`. The key
 * definition modules themselves do not count.
 */
const ROOT = path.resolve(__dirname, '../../../..');
const SRC = path.join(ROOT, 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

const files = new Map(sources(SRC).map((f) => [path.relative(ROOT, f), fs.readFileSync(f, 'utf8')] as const));
const DEFINITIONS = /^src\/config\/(keys-[^/]+|key|load|headers)\.ts$/;

/** Every exported key set, by export name, from the compiled key modules. */
function keySets(): Map<string, KeySet> {
  const out = new Map<string, KeySet>();
  const dir = path.join(ROOT, 'dist/src/config');
  for (const f of fs.readdirSync(dir).filter((n) => /^keys-.*\.js$/.test(n))) {
    for (const [name, value] of Object.entries(require(path.join(dir, f)) as Record<string, unknown>)) {
      if (value && typeof value === 'object' && Object.values(value).every((d) => typeof (d as KeyDef<unknown>).env === 'string')) out.set(name, value as KeySet);
    }
  }
  return out;
}

const sets = keySets();
const loaded = new Set<string>();
for (const text of files.values()) for (const m of text.matchAll(/\bloadConfig\((\w+)/g)) loaded.add(m[1] as string);

/** Sets whose every entry is in `set` with the same definition (spread into it). */
function includedIn(set: KeySet): string[] {
  return [...sets].filter(([, t]) => Object.entries(t).every(([f, d]) => set[f] === d)).map(([n]) => n);
}

/** Names that stand for a set in code: the set and its `ConfigOf<typeof SET>` aliases. */
function namesOf(setName: string): string[] {
  const names = [setName];
  for (const text of files.values()) for (const m of text.matchAll(new RegExp(`type (\\w+) = ConfigOf<typeof ${setName}>`, 'g'))) names.push(m[1] as string);
  return names;
}

test('the command key sets are found (the scan below is not vacuous)', (t) => {
  for (const name of ['NODE_KEYS', 'CA_KEYS', 'REDIRECT_KEYS', 'MESH_KEYS', 'EXPLAIN_KEYS']) t.true(loaded.has(name) && sets.has(name), name);
});

test('every key of every command is read by that command\'s code', (t) => {
  const unread: string[] = [];
  for (const setName of [...loaded].filter((n) => sets.has(n))) {
    const set = sets.get(setName) as KeySet;
    const names = includedIn(set).flatMap(namesOf);
    const readers = [...files].filter(([f, text]) => !DEFINITIONS.test(f) && names.some((n) => new RegExp(`\\b${n}\\b`).test(text)));
    t.true(readers.length > 0, `${setName} has code that uses it`);
    for (const [field, def] of Object.entries(set)) {
      const read = new RegExp(`\\b(?:c|config)\\.${field}\\b|\\{[^}]*\\b${field}\\b[^}]*\\}\\s*=\\s*(?:c|config)\\b`);
      if (!readers.some(([, text]) => read.test(text))) unread.push(`${setName}.${field} (${def.env}) is defined but not read by ${readers.map(([f]) => f).join(', ')}`);
    }
  }
  t.deepEqual(unread, []);
});
