import type { ParseResult } from './key';

/** Extra gRPC metadata from `<PREFIX><NAME>=value` variables, as (lower-case name, value). */
export type GrpcHeaders = readonly (readonly [string, string])[];

/** Names the client sets itself or gRPC reserves: an extra header must not replace them. */
const RESERVED = new Set(['authorization', 'clusterid', 'content-type', 'te', 'user-agent', 'host']);

/**
 * Collects the variables with a prefix (CA_HEADER_, XDS_HEADER_) into the raw form a prefix
 * key parses: one `NAME=value` line per variable, sorted by name so the result does not
 * depend on the environment's order.
 */
export function collectPrefixed(env: Readonly<Record<string, string | undefined>>, prefix: string): string {
  return Object.keys(env)
    .filter((k) => k.startsWith(prefix) && k.length > prefix.length && env[k] !== undefined)
    .sort()
    .map((k) => `${k.slice(prefix.length)}=${env[k] as string}`)
    .join('\n');
}

/**
 * Parses collected `NAME=value` lines into gRPC metadata, as ztunnel does with
 * CA_HEADER_<NAME> and XDS_HEADER_<NAME>: the name is the variable's suffix in lower case
 * (gRPC metadata keys are lower case: 0-9 a-z _ - .), the value printable ASCII. Binary
 * (`-bin`), `grpc-` and the client's own headers are refused, naming the variable.
 */
export function parseGrpcHeaders(prefix: string): (raw: string) => ParseResult<GrpcHeaders> {
  return (raw) => {
    const out: [string, string][] = [];
    for (const line of raw === '' ? [] : raw.split('\n')) {
      const eq = line.indexOf('=');
      const suffix = line.slice(0, eq);
      const value = line.slice(eq + 1);
      const name = suffix.toLowerCase();
      const bad = (why: string): ParseResult<GrpcHeaders> => ({ ok: false, expected: `${prefix}${suffix}: ${why}` });
      if (!/^[0-9a-z_.-]+$/.test(name)) return bad('a metadata name of letters, digits, _ - . only');
      if (name.endsWith('-bin') || name.startsWith('grpc-') || RESERVED.has(name)) return bad(`a name other than ${name} (reserved by gRPC or set by the client)`);
      if (!/^[\x20-\x7e]*$/.test(value)) return bad('a value of printable ASCII');
      out.push([name, value.trim()]);
    }
    return { ok: true, value: out };
  };
}
