import type { ConditionKey } from '../config/types';
import type { RequestIdentity } from './types';

/** The `when` keys request authentication adds, for messages. */
export const AUTH_WHEN_KEYS = 'request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>] (nested: request.auth.claims[<a>][<b>])';

const CLAIMS = /^request\.auth\.claims((?:\[[^\][]+\])+)$/;

/** Parses Istio's `request.auth.*` condition keys; null for any other key. */
export function authConditionKey(k: string): ConditionKey | null {
  if (k === 'request.auth.principal' || k === 'request.auth.audiences' || k === 'request.auth.presenter') return { kind: k };
  const m = CLAIMS.exec(k);
  if (!m) return null;
  const path = (m[1] as string).slice(1, -1).split('][');
  return { kind: 'request.auth.claims', path };
}

/** A claim by path through nested objects; undefined when any step is missing. */
export function claimValue(claims: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let v: unknown = claims;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/**
 * The strings a `request.auth.*` condition compares against, as Istio does: the principal
 * `<iss>/<sub>`, each audience, the presenter (`azp`), and for a claim its value when it
 * is a string or each element when it is a list of strings (other types match nothing).
 * Without a verified token there is nothing to match (so `values` fail and `notValues` hold).
 */
export function authValues(key: Extract<ConditionKey, { kind: `request.auth.${string}` }>, id: RequestIdentity | null): readonly string[] {
  if (!id) return [];
  switch (key.kind) {
    case 'request.auth.principal':
      return [id.principal];
    case 'request.auth.audiences':
      return id.audiences;
    case 'request.auth.presenter':
      return id.presenter ? [id.presenter] : [];
    case 'request.auth.claims': {
      const v = claimValue(id.claims, key.path);
      if (typeof v === 'string') return [v];
      if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
      return [];
    }
  }
}
