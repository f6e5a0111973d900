import { isScalar } from 'yaml';
import { show, type YamlReader, type YNode } from '../../state/config/yaml-reader';
import { parseRegex } from '../config/meta';
import type { IstioStringMatch } from './types';

/**
 * Value readers shared by the VirtualService, DestinationRule and LocalRateLimit parsers:
 * Istio's duration and percentage spellings, StringMatch, and gRPC status names.
 */

const UNIT_MS: Record<string, number> = { h: 3600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };

/** A protobuf/Go duration ("1s", "0.5s", "250ms", "1m30s") in ms; null when absent. Must be at least `minMs`. */
export function duration(r: YamlReader, node: YNode, path: string, minMs = 1): number | null | undefined {
  if (r.isNull(node)) return null;
  const s = r.string(node, path);
  if (s === undefined) return undefined;
  if (!/^([0-9]+(\.[0-9]+)?(h|ms|m|s|us|µs|ns))+$/.test(s)) {
    r.error(node, path, `${JSON.stringify(s)} is not a duration (e.g. 250ms, 1.5s, 1m)`);
    return undefined;
  }
  let ms = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  if (ms < minMs) {
    r.error(node, path, `${JSON.stringify(s)} is too short (at least ${minMs}ms)`);
    return undefined;
  }
  return Math.round(ms);
}

/** A number (integer or decimal) within [min, max]. */
export function num(r: YamlReader, node: YNode, path: string, min: number, max: number, what: string): number | undefined {
  const v = isScalar(node) ? node.value : undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    r.error(node, path, `${show(node)} is not ${what} (expected a number from ${min} to ${max})`);
    return undefined;
  }
  return n;
}

/**
 * Istio's fault/mirror percentage: `percentage: {value: 12.5}` (0–100, decimals allowed)
 * or the deprecated integer `percent`. Absent → 100.
 */
export function percentage(r: YamlReader, o: { get(k: string): YNode; at(k: string): string }, ownerNode: YNode): number | undefined {
  const p = o.get('percentage');
  const legacy = o.get('percent');
  if (!r.isNull(p) && !r.isNull(legacy)) {
    r.error(legacy, o.at('percent'), 'set either percentage or percent, not both', ownerNode);
    return undefined;
  }
  if (!r.isNull(legacy)) return r.int(legacy, o.at('percent'), 0, 100, 'a percentage');
  if (r.isNull(p)) return 100;
  const po = r.object(p, o.at('percentage'), ['value']);
  if (!po) return undefined;
  return num(r, po.get('value'), po.at('value'), 0, 100, 'a percentage');
}

/** Istio StringMatch: exactly one of exact, prefix, regex (RE2; JavaScript's covers the common subset). */
export function stringMatch(r: YamlReader, node: YNode, path: string): IstioStringMatch | undefined {
  const o = r.object(node, path, ['exact', 'prefix', 'regex']);
  if (!o) return undefined;
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => !r.isNull(o.get(k)));
  if (set.length !== 1) {
    r.error(node, path, 'exactly one of exact, prefix, regex must be set');
    return undefined;
  }
  const kind = set[0] as 'exact' | 'prefix' | 'regex';
  const value = r.string(o.get(kind), o.at(kind), { required: kind === 'regex' });
  if (value === undefined) return undefined;
  if (kind !== 'regex') return { kind, value };
  const re = parseRegex(r, o.get(kind), o.at(kind), value);
  return re ? { kind, value, re } : undefined;
}

export function matchString(m: IstioStringMatch, v: string | undefined): boolean {
  if (v === undefined) return false;
  if (m.kind === 'regex') return m.re.test(v);
  return m.kind === 'exact' ? v === m.value : v.startsWith(m.value);
}

/** gRPC status codes by their canonical names. */
export const GRPC_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};
