import type { Logger } from 'pino';
import { LOG_LEVELS, type LogLevel } from '../config/key';

/** A parsed level spec: the default level and per-scope overrides (`info,access=debug`). */
export interface LevelSpec {
  readonly base: LogLevel | null;
  readonly scopes: ReadonlyMap<string, LogLevel>;
}

/**
 * Parses ztunnel's level filter: comma-separated items, each a bare level (the default for
 * every scope) or `target=level`. A target may carry ztunnel's module path (`ztunnel::hbone`);
 * only its last segment names our scope. Returns an error message naming the bad item.
 */
export function parseLevelSpec(raw: string): { ok: true; spec: LevelSpec } | { ok: false; error: string } {
  let base: LogLevel | null = null;
  const scopes = new Map<string, LogLevel>();
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) return { ok: false, error: `empty level spec; expected a level (${LOG_LEVELS.join(', ')}) or scope=level items` };
  for (const item of items) {
    const eq = item.indexOf('=');
    const given = (eq < 0 ? item : item.slice(eq + 1)).trim().toLowerCase();
    // ztunnel's `off` is pino's `silent`.
    const level = given === 'off' ? 'silent' : given;
    if (!(LOG_LEVELS as readonly string[]).includes(level)) return { ok: false, error: `${JSON.stringify(item)}: level must be one of ${LOG_LEVELS.join(', ')}` };
    if (eq < 0) {
      base = level as LogLevel;
      continue;
    }
    const target = item.slice(0, eq).trim().split('::').pop() ?? '';
    if (!/^[a-z][a-z0-9_-]*$/.test(target)) return { ok: false, error: `${JSON.stringify(item)}: scope must be a name such as access or hbone` };
    scopes.set(target, level as LogLevel);
  }
  return { ok: true, spec: { base, scopes } };
}

/**
 * Runtime log levels per scope. pino fixes a child's level when the child is created, so a
 * level change on the root alone never reaches the `scope` children (hbone, access,
 * identity, ...). The root logger reports every child it creates here (pino's `onChild`);
 * a change re-applies the effective level to each live one. Children are held weakly, so a
 * per-connection child costs nothing once it is gone.
 */
export class LogLevels {
  private readonly children = new Set<WeakRef<Logger>>();
  private base: LogLevel;
  private scopes: ReadonlyMap<string, LogLevel> = new Map();
  /** Told of every applied filter (the node's data-path worker threads follow the main thread's /logging). */
  private readonly watchers = new Set<(spec: LevelSpec) => void>();

  constructor(
    private readonly root: Logger,
    private readonly initial: LogLevel,
  ) {
    this.base = initial;
  }

  /** pino `onChild` hook: the child gets its effective level now and on every change. */
  readonly track = (child: Logger): void => {
    this.children.add(new WeakRef(child));
    child.level = this.levelFor(scopeOf(child));
  };

  /** The scopes seen so far (children created with a `scope` binding). */
  knownScopes(): string[] {
    const out = new Set<string>();
    for (const ref of this.children) {
      const s = scopeOf(ref.deref());
      if (s) out.add(s);
    }
    return [...out].sort();
  }

  /**
   * Applies a spec as ztunnel's /logging does: it replaces the whole filter. A bare level
   * with no overrides resets every scope to it; unknown scopes are refused (a typo must not
   * silently change nothing).
   */
  apply(spec: LevelSpec): { ok: true } | { ok: false; error: string } {
    const known = new Set(this.knownScopes());
    for (const s of spec.scopes.keys()) {
      if (!known.has(s)) return { ok: false, error: `unknown scope ${JSON.stringify(s)}; known scopes: ${[...known].join(', ')}` };
    }
    this.set(spec);
    return { ok: true };
  }

  /**
   * Applies a filter without the known-scope check: a worker thread mirrors the filter the
   * main thread accepted, even for scopes the worker has not created yet.
   */
  mirror(spec: LevelSpec): void {
    this.set(spec);
  }

  /** The filter in force (a new worker thread starts from it). */
  current(): LevelSpec {
    return { base: this.base, scopes: this.scopes };
  }

  /** Calls `fn` after every applied filter; returns the unsubscribe function. */
  watch(fn: (spec: LevelSpec) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  private set(spec: LevelSpec): void {
    this.base = spec.base ?? this.base;
    this.scopes = new Map(spec.scopes);
    this.root.level = this.base;
    for (const ref of this.children) {
      const child = ref.deref();
      if (child) child.level = this.levelFor(scopeOf(child));
      else this.children.delete(ref);
    }
    for (const w of this.watchers) w({ base: this.base, scopes: this.scopes });
  }

  /** Back to the start-up level, no overrides. */
  reset(): void {
    this.apply({ base: this.initial, scopes: new Map() });
  }

  /** `info` or `info,access=debug,hbone=warn`: the filter in the form it is set. */
  describe(): string {
    return [this.base, ...[...this.scopes].map(([s, l]) => `${s}=${l}`)].join(',');
  }

  private levelFor(scope: string | undefined): LogLevel {
    return (scope !== undefined ? this.scopes.get(scope) : undefined) ?? this.base;
  }
}

function scopeOf(l: Logger | undefined): string | undefined {
  const s = l?.bindings()['scope'];
  return typeof s === 'string' ? s : undefined;
}
