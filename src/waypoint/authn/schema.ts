import type { JSONWebKeySet } from 'jose';
import type { ObjectReader, YamlReader, YNode } from '../../state/config/yaml-reader';
import { parseGatewayDuration, parseRef } from '../config/meta';
import type { ObjectMeta, RequestAuthn } from '../config/types';
import type { JwtRule, KeySource, TokenLocation } from './types';

const SPEC_FIELDS = ['targetRefs', 'targetRef', 'jwtRules'];
const RULE_FIELDS = ['issuer', 'audiences', 'jwks', 'jwksUri', 'jwks_uri', 'fromHeaders', 'fromParams', 'fromCookies', 'forwardOriginalToken', 'outputPayloadToHeader', 'outputClaimToHeaders', 'timeout'];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Istio's default JWKS fetch timeout. */
const DEFAULT_TIMEOUT_MS = 5000;
/** Istio's default token locations when a rule names none. */
const DEFAULT_LOCATIONS: readonly TokenLocation[] = [
  { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
  { kind: 'param', name: 'access_token' },
];

/**
 * The spec of a RequestAuthentication (security.istio.io/v1) attached to the waypoint or a
 * Service with targetRefs. Each jwtRule is checked whole: an issuer, a key source (`jwks`
 * inline JSON, `jwksUri`, or neither: OpenID discovery at `<issuer>/.well-known/openid-configuration`),
 * valid header names and token locations.
 */
export function parseRequestAuthnSpec(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): RequestAuthn | undefined {
  const o = r.object(node, path, SPEC_FIELDS, (k) =>
    k === 'selector' ? 'a RequestAuthentication with a selector applies to sidecars, not to the waypoint; attach it with targetRefs (kind Gateway = the waypoint, or kind Service)' : null,
  );
  if (!o) return undefined;
  const refOpts = { allowPort: false, allowSection: false };
  const targets = [
    ...r.list(o.get('targetRefs'), o.at('targetRefs'), 'targetRefs', (n, p) => parseRef(r, n, p, meta.namespace, refOpts)),
    ...(r.isNull(o.get('targetRef')) ? [] : [parseRef(r, o.get('targetRef'), o.at('targetRef'), meta.namespace, refOpts)].filter((x) => x !== undefined)),
  ];
  if (r.isNull(o.get('targetRefs')) && r.isNull(o.get('targetRef'))) r.error(node, path, 'targetRefs is required: the waypoint applies RequestAuthentications attached to the waypoint Gateway or to a Service');
  const rules = r.list(o.get('jwtRules'), o.at('jwtRules'), 'jwtRules', (n, p, i) => parseRule(r, n, p, `${meta.namespace}/${meta.name}#${i}`));
  return { meta, targets, rules };
}

function parseRule(r: YamlReader, n: YNode, p: string, id: string): JwtRule | undefined {
  const o = r.object(n, p, RULE_FIELDS);
  if (!o) return undefined;
  const issuer = r.string(o.get('issuer'), o.at('issuer'), { required: true, owner: n });
  const audiences = r.list(o.get('audiences'), o.at('audiences'), 'strings', (vn, vp) => r.string(vn, vp, { required: true }));
  const jwksText = r.string(o.get('jwks'), o.at('jwks'), { def: '' });
  const uriField = r.isNull(o.get('jwksUri')) ? 'jwks_uri' : 'jwksUri';
  const uriText = r.string(o.get(uriField), o.at(uriField), { def: '' });
  const timeoutMs = parseGatewayDuration(r, o.get('timeout'), o.at('timeout'));
  const forwardOriginalToken = r.bool(o.get('forwardOriginalToken'), o.at('forwardOriginalToken'), false);
  const payloadHeader = r.string(o.get('outputPayloadToHeader'), o.at('outputPayloadToHeader'), { def: '' });
  if (payloadHeader && !TOKEN.test(payloadHeader)) r.error(o.get('outputPayloadToHeader'), o.at('outputPayloadToHeader'), `${JSON.stringify(payloadHeader)} is not a valid header name`);
  const outputClaimToHeaders = r.list(o.get('outputClaimToHeaders'), o.at('outputClaimToHeaders'), '{header, claim}', (cn, cp) => {
    const co = r.object(cn, cp, ['header', 'claim']);
    if (!co) return undefined;
    const header = r.string(co.get('header'), co.at('header'), { required: true, owner: cn });
    const claim = r.string(co.get('claim'), co.at('claim'), { required: true, owner: cn });
    if (header !== undefined && !TOKEN.test(header)) r.error(co.get('header'), co.at('header'), `${JSON.stringify(header)} is not a valid header name`);
    return header === undefined || claim === undefined ? undefined : { header: header.toLowerCase(), claim };
  });
  const locations: TokenLocation[] = [
    ...r.list(o.get('fromHeaders'), o.at('fromHeaders'), '{name, prefix}', (hn, hp) => {
      const ho = r.object(hn, hp, ['name', 'prefix']);
      if (!ho) return undefined;
      const name = r.string(ho.get('name'), ho.at('name'), { required: true, owner: hn });
      const prefix = r.string(ho.get('prefix'), ho.at('prefix'), { def: '' });
      if (name !== undefined && !TOKEN.test(name)) r.error(ho.get('name'), ho.at('name'), `${JSON.stringify(name)} is not a valid header name`);
      return name === undefined || prefix === undefined ? undefined : { kind: 'header' as const, name: name.toLowerCase(), prefix };
    }),
    ...r.list(o.get('fromParams'), o.at('fromParams'), 'query parameter names', (vn, vp) => {
      const name = r.string(vn, vp, { required: true });
      return name === undefined ? undefined : { kind: 'param' as const, name };
    }),
    ...r.list(o.get('fromCookies'), o.at('fromCookies'), 'cookie names', (vn, vp) => {
      const name = r.string(vn, vp, { required: true });
      if (name !== undefined && !TOKEN.test(name)) r.error(vn, vp, `${JSON.stringify(name)} is not a valid cookie name`);
      return name === undefined ? undefined : { kind: 'cookie' as const, name };
    }),
  ];
  // Istio uses inline jwks when both are set; without either, OpenID discovery from the issuer.
  let keys: KeySource | null = null;
  if (jwksText) {
    const jwks = parseJwks(r, o.get('jwks'), o.at('jwks'), jwksText);
    keys = jwks ? { kind: 'inline', jwks } : null;
  } else if (uriText) {
    const uri = checkUri(r, o.get(uriField), o.at(uriField), uriText);
    keys = uri ? { kind: 'uri', uri } : null;
  } else if (issuer !== undefined) {
    const uri = discoveryUri(r, o, issuer);
    keys = uri ? { kind: 'discovery', uri } : null;
  }
  if (issuer === undefined || timeoutMs === undefined || forwardOriginalToken === undefined || payloadHeader === undefined || keys === null) return undefined;
  return {
    id,
    issuer,
    audiences,
    keys,
    timeoutMs: timeoutMs ?? DEFAULT_TIMEOUT_MS,
    locations: locations.length > 0 ? locations : DEFAULT_LOCATIONS,
    forwardOriginalToken,
    outputPayloadToHeader: payloadHeader ? payloadHeader.toLowerCase() : null,
    outputClaimToHeaders,
  };
}

/** Inline JWKS: JSON with a `keys` list of JWKs, each with a `kty`. */
function parseJwks(r: YamlReader, n: YNode, p: string, text: string): JSONWebKeySet | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    r.error(n, p, `jwks is not valid JSON: ${(err as Error).message}`);
    return null;
  }
  const keys = (v as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'object' && k !== null && typeof (k as { kty?: unknown }).kty === 'string')) {
    r.error(n, p, 'jwks must be a JSON Web Key Set: {"keys": [ {"kty": …}, … ]} with at least one key');
    return null;
  }
  return v as JSONWebKeySet;
}

function checkUri(r: YamlReader, n: YNode, p: string, text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    r.error(n, p, `${JSON.stringify(text)} is not a URL`);
    return null;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    r.error(n, p, `${JSON.stringify(text)}: only https:// and http:// JWKS URIs are supported`);
    return null;
  }
  return u.toString();
}

/** `<issuer>/.well-known/openid-configuration`, when the issuer is an http(s) URL. */
function discoveryUri(r: YamlReader, o: ObjectReader, issuer: string): string | null {
  if (/^https?:\/\//.test(issuer)) {
    try {
      return new URL(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`).toString();
    } catch {
      // falls through to the error below
    }
  }
  r.error(o.get('issuer'), o.at('issuer'), `set jwks or jwksUri: issuer ${JSON.stringify(issuer)} is not an http(s) URL, so its keys cannot be discovered (OpenID discovery)`);
  return null;
}
