import { parseListenAddr, type ListenAddr } from '../util/socket-addr';
import { parseDuration } from '../util/duration';

/** Environment as a plain map: loadConfig never touches process.env itself. */
export type Env = Readonly<Record<string, string | undefined>>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; expected: string };

/**
 * One configuration key. `env` is the Istio/ztunnel name where the concept exists; the flag
 * is derived from it (ADMIN_ADDR → --admin-addr). `default` may look at the rest of the env
 * (CA_ADDRESS depends on KUBERNETES_SERVICE_HOST, as in ztunnel).
 */
export interface KeyDef<T> {
  readonly env: string;
  readonly doc: string;
  readonly default: string | undefined | ((env: Env) => string | undefined);
  readonly parse: (raw: string) => ParseResult<T>;
  /** A boolean key may be given as a bare flag (`--dry-run`). */
  readonly bare?: boolean;
  /** Keys whose value must never be printed (tokens). */
  readonly secret?: boolean;
  /**
   * `env` is a prefix (CA_HEADER_): the value is every `<env><NAME>` variable, collected as
   * `NAME=value` lines (see collectPrefixed). Such a key has no flag.
   */
  readonly prefix?: boolean;
}

export type KeySet = Readonly<Record<string, KeyDef<unknown>>>;
export type ConfigOf<K extends KeySet> = { readonly [P in keyof K]: K[P] extends KeyDef<infer T> ? T : never };

/** How a key is shown in errors and help: `CA_HEADER_<NAME>` for a prefix key. */
export function envLabel(def: Pick<KeyDef<unknown>, 'env' | 'prefix'>): string {
  return def.prefix ? `${def.env}<NAME>` : def.env;
}

export function flagName(envName: string): string {
  return '--' + envName.toLowerCase().replace(/_/g, '-');
}

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const bad = <T>(expected: string): ParseResult<T> => ({ ok: false, expected });

export const p = {
  string: (raw: string): ParseResult<string> => ok(raw),
  optString: (raw: string): ParseResult<string | null> => ok(raw === '' ? null : raw),
  bool: (raw: string): ParseResult<boolean> => {
    const v = raw.toLowerCase();
    if (v === 'true' || v === '1' || v === 'yes') return ok(true);
    if (v === 'false' || v === '0' || v === 'no') return ok(false);
    return bad('a boolean (true or false)');
  },
  /** A boolean, or empty for "not set" (null): keys whose unset value means detect. */
  optBool: (raw: string): ParseResult<boolean | null> => (raw.trim() === '' ? ok(null) : p.bool(raw)),
  int:
    (min: number, max: number) =>
    (raw: string): ParseResult<number> => {
      if (!/^-?\d+$/.test(raw.trim())) return bad(`an integer from ${min} to ${max}`);
      const n = Number(raw);
      return n >= min && n <= max ? ok(n) : bad(`an integer from ${min} to ${max}`);
    },
  /** Integer that also accepts 0x hex (PACKET_MARK=0x539). */
  intOrHex:
    (min: number, max: number) =>
    (raw: string): ParseResult<number> => {
      const t = raw.trim();
      const n = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^\d+$/.test(t) ? Number(t) : NaN;
      return Number.isFinite(n) && n >= min && n <= max ? ok(n) : bad(`an integer (decimal or 0x hex) from ${min} to ${max}`);
    },
  duration:
    (minMs = 0) =>
    (raw: string): ParseResult<number> => {
      const ms = parseDuration(raw);
      return ms !== null && ms >= minMs ? ok(ms) : bad(`a duration such as 500ms, 10s, 5m or 24h${minMs ? ` (at least ${minMs}ms)` : ''}`);
    },
  listen: (raw: string): ParseResult<ListenAddr> => {
    const a = parseListenAddr(raw);
    return a ? ok(a) : bad('a listen address such as 127.0.0.1:15000, [::]:15020 or :15008 (port 0-65535)');
  },
  optListen: (raw: string): ParseResult<ListenAddr | null> => {
    if (raw === '') return ok(null);
    const a = parseListenAddr(raw);
    return a ? ok(a) : bad('a listen address such as 127.0.0.1:15080, or empty to disable');
  },
  oneOf:
    <T extends string>(...values: T[]) =>
    (raw: string): ParseResult<T> =>
      (values as string[]).includes(raw) ? ok(raw as T) : bad(`one of ${values.join(', ')}`),
  list: (raw: string): ParseResult<readonly string[]> =>
    ok(
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  portList: (raw: string): ParseResult<readonly number[]> => {
    const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const out: number[] = [];
    for (const s of parts) {
      if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) return bad('a comma-separated list of ports 1-65535');
      out.push(Number(s));
    }
    return ok(out);
  },
  /** `info`, `debug`, …, also accepting RUST_LOG-style `info,ztunnel::proxy=debug` by its first level. */
  logLevel: (raw: string): ParseResult<LogLevel> => {
    const first = raw.split(',')[0]?.trim().toLowerCase() ?? '';
    return (LOG_LEVELS as readonly string[]).includes(first) ? ok(first as LogLevel) : bad(`one of ${LOG_LEVELS.join(', ')}`);
  },
};

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function key<T>(def: KeyDef<T>): KeyDef<T> {
  return def;
}
