import { envLabel, flagName, type ConfigOf, type Env, type KeySet } from './key';
import { collectPrefixed } from './headers';

/** One bad key: which key, the value given, what was expected. */
export interface ConfigIssue {
  readonly key: string;
  readonly value: string;
  readonly expected: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super('invalid configuration:\n' + issues.map((i) => `  ${i.key}=${JSON.stringify(i.value)}: expected ${i.expected}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export interface Loaded<K extends KeySet> {
  readonly config: ConfigOf<K>;
  readonly positionals: readonly string[];
}

export type CrossCheck<K extends KeySet> = (c: Partial<ConfigOf<K>>, raw: Readonly<Record<string, string>>) => ConfigIssue[];

/**
 * The one pure config parser: (key set, env map, argv) → a deep-frozen config, or a
 * ConfigError that lists every bad key at once. Flags win over env, env over defaults.
 */
export function loadConfig<K extends KeySet>(keys: K, env: Env, argv: readonly string[], cross?: CrossCheck<K>): Loaded<K> {
  const issues: ConfigIssue[] = [];
  const byFlag = new Map<string, string>();
  for (const [field, def] of Object.entries(keys)) if (!def.prefix) byFlag.set(flagName(def.env), field);

  const fromFlags = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const field = byFlag.get(name);
    if (field === undefined) {
      issues.push({ key: name, value: eq >= 0 ? arg.slice(eq + 1) : '', expected: 'a known flag (see --help)' });
      continue;
    }
    const def = keys[field]!;
    if (eq >= 0) fromFlags.set(field, arg.slice(eq + 1));
    else if (def.bare) fromFlags.set(field, 'true');
    else if (i + 1 < argv.length) fromFlags.set(field, argv[++i] as string);
    else issues.push({ key: name, value: '', expected: 'a value after the flag' });
  }

  const out: Record<string, unknown> = {};
  const raw: Record<string, string> = {};
  for (const [field, def] of Object.entries(keys)) {
    const given = def.prefix ? collectPrefixed(env, def.env) : (fromFlags.get(field) ?? env[def.env]);
    const value = given ?? (typeof def.default === 'function' ? def.default(env) : def.default) ?? '';
    raw[field] = value;
    const r = def.parse(value);
    if (r.ok) out[field] = r.value;
    else issues.push({ key: fromFlags.has(field) ? flagName(def.env) : envLabel(def), value: def.secret ? '<redacted>' : value, expected: r.expected });
  }
  // Cross-field rules run on whatever parsed, so one run reports every problem at once;
  // a rule whose inputs failed to parse is skipped (its key is already reported).
  if (cross) issues.push(...cross(out as Partial<ConfigOf<K>>, raw));
  if (issues.length > 0) throw new ConfigError(issues);
  return { config: deepFreeze(out) as ConfigOf<K>, positionals };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

/** A printable view of a config (for /config_dump and --help): secrets masked. */
export function redactedConfig<K extends KeySet>(keys: K, config: ConfigOf<K>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, def] of Object.entries(keys)) out[field] = def.secret && !String((config as Record<string, unknown>)[field]).startsWith('/') && !String((config as Record<string, unknown>)[field]).startsWith('.') ? '<redacted>' : (config as Record<string, unknown>)[field];
  return out;
}

/** `--help` text for a key set. */
export function describeKeys(keys: KeySet): string {
  const lines: string[] = [];
  for (const def of Object.values(keys)) {
    const d = typeof def.default === 'function' ? '(computed)' : JSON.stringify(def.default ?? '');
    lines.push(`  ${envLabel(def).padEnd(34)} ${def.prefix ? '(environment only)' : flagName(def.env)}`);
    lines.push(`      ${def.doc}; default ${d}`);
  }
  return lines.join('\n');
}
