import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Service } from '../../state/types';
import type { L7Config, RequestAuthn } from '../config/types';
import { refersToService, refersToWaypoint, type WaypointName } from '../l7/route-select';
import { claimValue } from './claims';
import type { JwksStore } from './jwks';
import type { AuthnResult, JwtFailure, JwtRule, RequestIdentity, TokenLocation } from './types';

/** Asymmetric algorithms only: a JWKS holds public keys, and "none" or HMAC with a public key are classic forgeries. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Envoy's default allowed clock skew for exp/nbf. */
const CLOCK_SKEW_S = 60;
const NONE: AuthnResult = { kind: 'none' };

/** The jwtRules in force for a request: those of RequestAuthentications attached to this waypoint or to the Service. */
export function jwtRulesFor(ras: readonly RequestAuthn[], svc: Pick<Service, 'name' | 'namespace'> | null, wp: WaypointName): JwtRule[] {
  const out: JwtRule[] = [];
  for (const ra of ras) if (ra.targets.some((t) => refersToWaypoint(t, wp) || (svc !== null && refersToService(t, svc, null)))) out.push(...ra.rules);
  return out;
}

/** Every jwtRule of a config (what the key store keeps fetched). */
export function allJwtRules(config: L7Config): JwtRule[] {
  return config.requestAuthns.flatMap((ra) => ra.rules);
}

/** Header names a request may not bring itself: the rules' output headers (they must only ever come from a verified token). */
export function outputHeaderNames(rules: readonly JwtRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    if (r.outputPayloadToHeader) out.push(r.outputPayloadToHeader);
    for (const c of r.outputClaimToHeaders) out.push(c.header);
  }
  return out;
}

interface Found {
  readonly token: string;
  readonly location: TokenLocation;
  /** The rules that read this location. */
  readonly rules: JwtRule[];
}

/**
 * Istio's request authentication for one request. The token is looked for in each rule's
 * locations in rule order (Authorization: Bearer and ?access_token when a rule names none);
 * the first one found decides. No token: `none` (authorization decides whether a request
 * principal is required). A token is verified against the rules that read its location and
 * name its `iss`: signature with the rule's keys (asymmetric algorithms only), exp/nbf with
 * 60 s skew, `aud` against the rule's audiences when it lists any. Any failure is `fail` (401).
 * Returns synchronously when there is no token, so requests without one pay no promise.
 */
export function authenticate(rules: readonly JwtRule[], headers: Readonly<Record<string, string>>, query: string, jwks: JwksStore): AuthnResult | Promise<AuthnResult> {
  if (rules.length === 0) return NONE;
  const found = findToken(rules, headers, query);
  if (!found) return NONE;
  return verify(found, jwks);
}

function findToken(rules: readonly JwtRule[], headers: Readonly<Record<string, string>>, query: string): Found | null {
  let params: URLSearchParams | null = null;
  for (const r of rules) {
    for (const loc of r.locations) {
      let token: string | null = null;
      if (loc.kind === 'header') {
        const v = headers[loc.name];
        if (v !== undefined && v.startsWith(loc.prefix)) token = v.slice(loc.prefix.length).trim();
      } else if (loc.kind === 'cookie') {
        const c = headers['cookie'];
        if (c !== undefined) token = cookieValue(c, loc.name);
      } else if (query !== '') {
        params ??= new URLSearchParams(query);
        token = params.get(loc.name);
      }
      if (token) return { token, location: loc, rules: rules.filter((x) => x.locations.some((l) => sameLocation(l, loc))) };
    }
  }
  return null;
}

function sameLocation(a: TokenLocation, b: TokenLocation): boolean {
  return a.kind === b.kind && a.name === b.name && (a.kind !== 'header' || a.prefix === (b as typeof a).prefix);
}

/** The value of cookie `name` in a Cookie header (`a=1; b=2`, several headers joined), or null. */
function cookieValue(header: string, name: string): string | null {
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1') || null;
  }
  return null;
}

async function verify(f: Found, jwks: JwksStore): Promise<AuthnResult> {
  let iss: string | undefined;
  try {
    iss = decodeJwt(f.token).iss;
  } catch {
    return fail(null, 'Jwt_is_not_in_the_form_of_Header.Payload.Signature', 'the token is not a JWT (header.payload.signature, base64url JSON)');
  }
  const candidates = f.rules.filter((r) => r.issuer === iss);
  if (candidates.length === 0) return fail(null, 'Jwt_issuer_is_not_configured', `issuer ${JSON.stringify(iss ?? '')} is not the issuer of any jwtRule reading ${describe(f.location)}`);
  let last: AuthnResult | null = null;
  for (const rule of candidates) {
    const r = await verifyWith(f, rule, jwks);
    if (r.kind === 'ok') return r;
    last = r;
  }
  return last as AuthnResult;
}

async function verifyWith(f: Found, rule: JwtRule, jwks: JwksStore): Promise<AuthnResult> {
  const keys = await jwks.keysFor(rule);
  if (!keys) return fail(rule.id, 'Jwks_remote_fetch_is_failed', `no keys for issuer ${rule.issuer}: the JWKS could not be fetched`);
  const opts = { issuer: rule.issuer, algorithms: ALGORITHMS, clockTolerance: CLOCK_SKEW_S, ...(rule.audiences.length > 0 ? { audience: [...rule.audiences] } : {}) };
  let payload: JWTPayload;
  try {
    payload = (await jwtVerify(f.token, keys, opts)).payload;
  } catch (err) {
    if (!(err instanceof errors.JWKSNoMatchingKey) || !(await jwks.refreshForUnknownKey(rule))) return fail(rule.id, failureOf(err), (err as Error).message);
    const fresh = await jwks.keysFor(rule);
    try {
      payload = (await jwtVerify(f.token, fresh ?? keys, opts)).payload;
    } catch (err2) {
      return fail(rule.id, failureOf(err2), (err2 as Error).message);
    }
  }
  return success(f, rule, payload);
}

function success(f: Found, rule: JwtRule, payload: JWTPayload): AuthnResult {
  const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  const identity: RequestIdentity = {
    principal: `${payload.iss ?? ''}/${payload.sub ?? ''}`,
    audiences: aud,
    presenter: typeof payload['azp'] === 'string' ? payload['azp'] : '',
    claims: payload,
  };
  const removeHeaders = !rule.forwardOriginalToken && f.location.kind === 'header' ? [f.location.name] : [];
  const setHeaders: { name: string; value: string }[] = [];
  // Envoy forwards the payload as it was signed: the token's base64url payload segment.
  if (rule.outputPayloadToHeader) setHeaders.push({ name: rule.outputPayloadToHeader, value: f.token.split('.')[1] ?? '' });
  for (const c of rule.outputClaimToHeaders) {
    const v = claimValue(payload, c.claim.split('.'));
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') setHeaders.push({ name: c.header, value: String(v) });
  }
  return { kind: 'ok', rule: rule.id, identity, removeHeaders, setHeaders };
}

function failureOf(err: unknown): JwtFailure {
  if (err instanceof errors.JWTExpired) return 'Jwt_is_expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') return 'Jwt_not_yet_valid';
    if (err.claim === 'aud') return 'Audiences_in_Jwt_are_not_allowed';
    if (err.claim === 'iss') return 'Jwt_issuer_is_not_configured';
    return 'Jwt_verification_fails';
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'Jwks_doesnt_have_key_to_match_kid_or_alg_from_Jwt';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'Jwt_is_not_in_the_form_of_Header.Payload.Signature';
  return 'Jwt_verification_fails';
}

function fail(rule: string | null, failure: JwtFailure, message: string): AuthnResult {
  return { kind: 'fail', rule, failure, message };
}

function describe(l: TokenLocation): string {
  return l.kind === 'header' ? `header ${l.name}` : l.kind === 'cookie' ? `cookie ${l.name}` : `query parameter ${l.name}`;
}
