import type { JSONWebKeySet } from 'jose';

/** Where a rule looks for its token: a header (with a prefix to strip) or a query parameter. */
export type TokenLocation =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

export type KeySource =
  | { readonly kind: 'inline'; readonly jwks: JSONWebKeySet }
  | { readonly kind: 'uri'; readonly uri: string }
  | { readonly kind: 'discovery'; readonly uri: string };

/** One `jwtRules` entry of a RequestAuthentication (security.istio.io/v1), normalised. */
export interface JwtRule {
  /** `namespace/name#index`: how decisions, logs and explain name the rule. */
  readonly id: string;
  readonly issuer: string;
  /** Accepted `aud` values; empty = the audience is not checked. */
  readonly audiences: readonly string[];
  /** Where the keys come from: inline `jwks`, `jwksUri`, or OpenID discovery from the issuer when neither is set. */
  readonly keys: KeySource;
  /** JWKS fetch timeout (the rule's `timeout`), ms. */
  readonly timeoutMs: number;
  /** Where the token is looked for: `fromHeaders` + `fromParams` + `fromCookies`, or Istio's defaults (Authorization: Bearer, ?access_token). */
  readonly locations: readonly TokenLocation[];
  readonly forwardOriginalToken: boolean;
  /** Lower-case header name, or null. */
  readonly outputPayloadToHeader: string | null;
  readonly outputClaimToHeaders: readonly { readonly header: string; readonly claim: string }[];
}

/** The verified request identity authorization sees (Istio's `request.auth.*`). */
export interface RequestIdentity {
  /** `<iss>/<sub>`. */
  readonly principal: string;
  readonly audiences: readonly string[];
  /** The `azp` claim, "" without one. */
  readonly presenter: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Stable reasons a token is refused, spelled as Envoy's jwt_authn status so logs read the same. */
export type JwtFailure =
  | 'Jwt_is_expired'
  | 'Jwt_not_yet_valid'
  | 'Jwt_issuer_is_not_configured'
  | 'Audiences_in_Jwt_are_not_allowed'
  | 'Jwt_verification_fails'
  | 'Jwt_is_not_in_the_form_of_Header.Payload.Signature'
  | 'Jwks_remote_fetch_is_failed'
  | 'Jwks_doesnt_have_key_to_match_kid_or_alg_from_Jwt';

/**
 * The outcome of request authentication for one request. `none`: no token in any location
 * of the rules that apply (the request goes on without a request principal); `ok`: a token
 * verified by `rule`; `fail`: a token was present but refused (401).
 */
export type AuthnResult =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'ok';
      readonly rule: string;
      readonly identity: RequestIdentity;
      /** Header changes for the upstream request: token removal and output headers. */
      readonly removeHeaders: readonly string[];
      readonly setHeaders: readonly { readonly name: string; readonly value: string }[];
    }
  | { readonly kind: 'fail'; readonly rule: string | null; readonly failure: JwtFailure; readonly message: string };
