import pino, { type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/key';
import { LogLevels } from './levels';

export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  format: 'json' | 'plain';
  /** Where lines go; defaults to stdout. Tests pass a collector. */
  destination?: DestinationStream;
  /** Fields on every line (component, node). */
  base?: Record<string, unknown>;
}

/**
 * Any field with one of these names is replaced before serialisation, so a private key
 * can never reach a log line even if a caller passes a certificate object by mistake.
 */
const REDACT = ['privateKey', 'key', 'keyPem', '*.privateKey', '*.key', '*.keyPem', 'token', '*.token', 'authorization', '*.authorization'];

/** Builds the root logger. Called once, by a composition root; never at import time. */
export function createLogger(opts: LoggerOptions): Logger {
  const dest = opts.destination ?? (opts.format === 'plain' ? plainDestination(process.stdout) : pino.destination({ dest: 1, sync: false }));
  const holder: { levels: LogLevels | null } = { levels: null };
  const root = pino(
    {
      level: opts.level,
      base: opts.base ?? {},
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      onChild: (child) => holder.levels?.track(child),
    },
    dest,
  );
  holder.levels = new LogLevels(root, opts.level);
  (root as Logger & { [LEVELS]?: LogLevels })[LEVELS] = holder.levels;
  (root as Logger & { [DEST]?: DestinationStream })[DEST] = dest;
  return root;
}

const LEVELS = Symbol('ztunnel-ts.logLevels');
const DEST = Symbol('ztunnel-ts.logDestination');

/**
 * Where a root logger made by createLogger writes: the node's worker threads send their
 * finished JSON lines to the main thread, which writes them here, so one process has one
 * log stream (and the plain format, when chosen, formats every thread's lines alike).
 */
export function logDestinationOf(root: Logger): DestinationStream | undefined {
  return (root as Logger & { [DEST]?: DestinationStream })[DEST];
}

/**
 * The per-scope level control of a root logger made by createLogger (the admin /logging
 * endpoint). A logger from elsewhere gets a control that only knows the root.
 */
export function logLevelsOf(root: Logger): LogLevels {
  const own = (root as Logger & { [LEVELS]?: LogLevels })[LEVELS];
  return own ?? new LogLevels(root, root.level as LogLevel);
}

const SKIP = new Set(['level', 'time', 'msg', 'scope']);

/**
 * ztunnel's plain format: `<time> <LEVEL> <scope> <msg> k=v k=v`. Strings with spaces
 * are quoted so lines stay grep-able.
 */
export function formatPlain(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const parts = [String(o['time'] ?? ''), String(o['level'] ?? '').toUpperCase().padStart(5), String(o['scope'] ?? ''), String(o['msg'] ?? '')];
  for (const [k, v] of Object.entries(o)) {
    if (SKIP.has(k) || v === undefined) continue;
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`);
  }
  return parts.filter((s) => s !== '').join(' ') + '\n';
}

export function plainDestination(out: NodeJS.WritableStream): DestinationStream {
  return { write: (s: string) => void out.write(formatPlain(s)) };
}
