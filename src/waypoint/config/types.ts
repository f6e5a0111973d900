import type { Cidr, StringMatch } from '../../state/types';
import type { JwtRule } from '../authn/types';
import { EMPTY_TRAFFIC, type TrafficConfig } from '../traffic/types';
import type { ObjectMeta, ObjectRef } from './object-types';

export type { Cidr, ObjectMeta, ObjectRef };

/**
 * The waypoint's L7 configuration model: Gateway API HTTPRoute/GRPCRoute and Istio's L7
 * AuthorizationPolicy, as parsed from the objects a user applies. Plain readonly data so
 * /config_dump shows it as is; produced only by the parser in this directory.
 */

export type PathMatch =
  | { readonly type: 'Exact'; readonly value: string }
  | { readonly type: 'PathPrefix'; readonly value: string }
  | { readonly type: 'RegularExpression'; readonly value: string; readonly re: RegExp };

export type ValueMatch = { readonly type: 'Exact'; readonly value: string } | { readonly type: 'RegularExpression'; readonly value: string; readonly re: RegExp };

export interface NamedMatch {
  /** Header names lower-case; query parameter names as written (case-sensitive). */
  readonly name: string;
  readonly match: ValueMatch;
}

/** One HTTPRouteMatch / GRPCRouteMatch, normalised to HTTP terms (gRPC methods become paths). */
export interface RouteMatch {
  readonly path: PathMatch;
  readonly headers: readonly NamedMatch[];
  readonly queryParams: readonly NamedMatch[];
  readonly method: string | null;
  /**
   * A GRPCRouteMatch's method match as written ('' = not set), for GRPCRoute precedence
   * (characters of the matching service, then of the method); null for HTTPRoute matches.
   */
  readonly grpc: { readonly service: string; readonly method: string } | null;
}

export interface HeaderModifier {
  readonly set: readonly { readonly name: string; readonly value: string }[];
  readonly add: readonly { readonly name: string; readonly value: string }[];
  /** Lower-case names. */
  readonly remove: readonly string[];
}

export type PathModifier = { readonly type: 'ReplaceFullPath'; readonly value: string } | { readonly type: 'ReplacePrefixMatch'; readonly value: string };

export interface BackendRef {
  readonly name: string;
  readonly namespace: string;
  readonly port: number;
  readonly weight: number;
}

export type RouteFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly modifier: HeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly modifier: HeaderModifier }
  | {
      readonly type: 'RequestRedirect';
      readonly scheme: 'http' | 'https' | null;
      readonly hostname: string | null;
      readonly path: PathModifier | null;
      readonly port: number | null;
      readonly statusCode: 301 | 302 | 303 | 307 | 308;
    }
  | { readonly type: 'URLRewrite'; readonly hostname: string | null; readonly path: PathModifier | null }
  | { readonly type: 'RequestMirror'; readonly backend: BackendRef; readonly percent: number };

export interface RouteRule {
  /** Position in the route's rules, for explain and ties. */
  readonly index: number;
  readonly matches: readonly RouteMatch[];
  readonly filters: readonly RouteFilter[];
  readonly backends: readonly BackendRef[];
  /** timeouts.request / timeouts.backendRequest in ms; null = none. */
  readonly requestTimeoutMs: number | null;
  readonly backendTimeoutMs: number | null;
  /** Gateway API `retry` (codes, attempts, backoff); null = none. */
  readonly retry: HttpRouteRetry | null;
}

export interface HttpRouteRetry {
  readonly attempts: number;
  readonly codes: readonly number[];
  /** null = the waypoint's default back-off. */
  readonly backoffMs: number | null;
}

export interface Route {
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  readonly meta: ObjectMeta;
  readonly parents: readonly ObjectRef[];
  /** Lower-case; `*.example.com` wildcards allowed. Empty = any. */
  readonly hostnames: readonly string[];
  readonly rules: readonly RouteRule[];
}

/** Istio string match: exact, prefix `abc*`, suffix `*abc`, presence `*` (the L4 policy model's type). */
export type IstioMatch = StringMatch;

export interface SourceMatch {
  readonly principals: readonly IstioMatch[];
  readonly notPrincipals: readonly IstioMatch[];
  /** `<iss>/<sub>` of the request's verified JWT (RequestAuthentication). */
  readonly requestPrincipals: readonly IstioMatch[];
  readonly notRequestPrincipals: readonly IstioMatch[];
  readonly namespaces: readonly IstioMatch[];
  readonly notNamespaces: readonly IstioMatch[];
  readonly ipBlocks: readonly Cidr[];
  readonly notIpBlocks: readonly Cidr[];
  readonly remoteIpBlocks: readonly Cidr[];
  readonly notRemoteIpBlocks: readonly Cidr[];
}

export interface OperationMatch {
  readonly hosts: readonly IstioMatch[];
  readonly notHosts: readonly IstioMatch[];
  readonly ports: readonly number[];
  readonly notPorts: readonly number[];
  readonly methods: readonly IstioMatch[];
  readonly notMethods: readonly IstioMatch[];
  readonly paths: readonly IstioMatch[];
  readonly notPaths: readonly IstioMatch[];
}

export type ConditionKey =
  | { readonly kind: 'request.headers'; readonly name: string }
  | { readonly kind: 'request.auth.principal' | 'request.auth.audiences' | 'request.auth.presenter' }
  /** `request.auth.claims[a][b]`: the path into nested claims. */
  | { readonly kind: 'request.auth.claims'; readonly path: readonly string[] }
  | { readonly kind: 'source.ip' | 'remote.ip' | 'destination.ip' }
  | { readonly kind: 'source.namespace' | 'source.principal' | 'destination.port' };

export interface Condition {
  readonly key: ConditionKey;
  /** The key as written, for explain. */
  readonly keyText: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

export interface PolicyRule {
  /** ORed; empty = any source. */
  readonly from: readonly SourceMatch[];
  /** ORed; empty = any operation. */
  readonly to: readonly OperationMatch[];
  /** ANDed. */
  readonly when: readonly Condition[];
}

export interface L7Policy {
  readonly meta: ObjectMeta;
  readonly targets: readonly ObjectRef[];
  readonly action: 'ALLOW' | 'DENY' | 'AUDIT';
  /** ORed. An empty list matches nothing. */
  readonly rules: readonly PolicyRule[];
}

/** A declared Service port protocol: opaque TCP, HTTP/1.1 (`http`) or HTTP/2 (`http2`, `grpc`, h2c). */
export type PortProtocol = 'tcp' | 'http' | 'http2';

/** A RequestAuthentication (security.istio.io/v1) attached with targetRefs; its jwtRules are authn/'s model. */
export interface RequestAuthn {
  readonly meta: ObjectMeta;
  readonly targets: readonly ObjectRef[];
  readonly rules: readonly JwtRule[];
}

/**
 * A core/v1 Service as the waypoint reads it: only each port's protocol (appProtocol, or
 * Istio's port-name prefix). Workloads, VIPs and endpoints come from the state sources.
 */
export interface ServicePorts {
  readonly meta: ObjectMeta;
  /** servicePort → 'tcp' (opaque, no sniffing), 'http' or 'http2' (upstream protocol); absent = detect, upstream as the client spoke. */
  readonly protocols: Readonly<Record<number, PortProtocol>>;
}

/** Everything one load of the waypoint config produced. */
export interface L7Config {
  readonly routes: readonly Route[];
  readonly policies: readonly L7Policy[];
  readonly services: readonly ServicePorts[];
  readonly requestAuthns: readonly RequestAuthn[];
  /** Kinds seen and skipped (one log line each). */
  readonly ignoredKinds: readonly string[];
  /** VirtualServices, DestinationRules and LocalRateLimits (see src/waypoint/traffic). */
  readonly traffic: TrafficConfig;
}

export const EMPTY_L7: L7Config = { routes: [], policies: [], services: [], requestAuthns: [], ignoredKinds: [], traffic: EMPTY_TRAFFIC };
