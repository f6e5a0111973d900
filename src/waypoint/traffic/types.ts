import type { ObjectMeta } from '../config/object-types';

/**
 * The traffic-management model of the waypoint: Istio's VirtualService and
 * DestinationRule and our LocalRateLimit, as parsed from the objects a user applies.
 * Plain readonly data (shown in /config_dump as is); produced only by the parsers in
 * this directory.
 */

/** Istio StringMatch: exact, prefix or (anchored) regex. */
export type IstioStringMatch = { readonly kind: 'exact' | 'prefix'; readonly value: string } | { readonly kind: 'regex'; readonly value: string; readonly re: RegExp };

/** One HTTPMatchRequest: every populated field must match (ANDed). */
export interface VsMatch {
  readonly name: string | null;
  readonly uri: IstioStringMatch | null;
  readonly ignoreUriCase: boolean;
  readonly method: IstioStringMatch | null;
  readonly authority: IstioStringMatch | null;
  /** Lower-case header names. */
  readonly headers: readonly { readonly name: string; readonly match: IstioStringMatch }[];
  readonly withoutHeaders: readonly { readonly name: string; readonly match: IstioStringMatch }[];
  readonly queryParams: readonly { readonly name: string; readonly match: IstioStringMatch }[];
  readonly port: number | null;
  readonly sourceNamespace: string | null;
}

/** The retry conditions Envoy knows (`retryOn`), plus explicit status codes. */
export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'retriable-4xx'
  | 'refused-stream'
  | 'retriable-status-codes'
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

export interface RetryPolicy {
  /** Retries after the first try (0 = none). */
  readonly attempts: number;
  /** Per try; null = the overall timeout bounds each try. */
  readonly perTryTimeoutMs: number | null;
  readonly retryOn: readonly RetryOn[];
  /** Codes retried under `retriable-status-codes` (and every numeric `retryOn` entry). */
  readonly statusCodes: readonly number[];
  /** Exponential backoff base; each wait is uniformly jittered in [0, base·2^n) capped at 10·base. */
  readonly backoffBaseMs: number;
  /** Where the policy was written, for explain. */
  readonly source: string;
}

export interface FaultPolicy {
  readonly delay: { readonly fixedDelayMs: number; readonly percent: number } | null;
  /** Exactly one of httpStatus / grpcStatus (a gRPC code number). */
  readonly abort: { readonly httpStatus: number | null; readonly grpcStatus: number | null; readonly percent: number } | null;
}

export interface VsDestination {
  readonly host: string;
  readonly subset: string | null;
  /** null = the port the request was addressed to. */
  readonly port: number | null;
  readonly weight: number;
}

export interface VsHttpRoute {
  readonly index: number;
  readonly name: string | null;
  /** ORed; empty = any request. */
  readonly match: readonly VsMatch[];
  readonly route: readonly VsDestination[];
  /** null = Istio's default retry policy. */
  readonly retries: RetryPolicy | null;
  readonly timeoutMs: number | null;
  readonly fault: FaultPolicy | null;
}

export interface VirtualService {
  readonly meta: ObjectMeta;
  /** As written (short names are resolved against meta.namespace at lookup). */
  readonly hosts: readonly string[];
  readonly http: readonly VsHttpRoute[];
}

export interface ConnectionPool {
  readonly maxConnections: number | null;
  readonly connectTimeoutMs: number | null;
  readonly http1MaxPendingRequests: number | null;
  readonly http2MaxRequests: number | null;
  readonly maxRequestsPerConnection: number | null;
  readonly maxRetries: number | null;
  readonly idleTimeoutMs: number | null;
}

export interface OutlierDetection {
  readonly consecutive5xxErrors: number;
  readonly consecutiveGatewayErrors: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  readonly minHealthPercent: number;
}

export type LoadBalancer =
  | { readonly kind: 'simple'; readonly simple: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' }
  | { readonly kind: 'hash'; readonly by: { readonly header: string } | { readonly cookie: string } | { readonly sourceIp: true } };

export interface TrafficPolicy {
  readonly connectionPool: ConnectionPool | null;
  readonly outlierDetection: OutlierDetection | null;
  readonly loadBalancer: LoadBalancer | null;
}

export interface Subset {
  readonly name: string;
  /** Label selector over the labels the waypoint knows of an endpoint (see subset labels). */
  readonly labels: Readonly<Record<string, string>>;
  readonly trafficPolicy: TrafficPolicy | null;
}

export interface DestinationRule {
  readonly meta: ObjectMeta;
  readonly host: string;
  readonly trafficPolicy: TrafficPolicy | null;
  readonly subsets: readonly Subset[];
}

/** What a LocalRateLimit applies to: a Service (every request), a route object, or one named VirtualService http route. */
export type RateLimitTarget = { readonly kind: 'Service'; readonly name: string; readonly namespace: string } | { readonly kind: 'HTTPRoute' | 'VirtualService'; readonly name: string; readonly namespace: string; readonly sectionName: string | null };

export interface LocalRateLimit {
  readonly meta: ObjectMeta;
  readonly targets: readonly RateLimitTarget[];
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

export interface TrafficConfig {
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  readonly rateLimits: readonly LocalRateLimit[];
}

export const EMPTY_TRAFFIC: TrafficConfig = { virtualServices: [], destinationRules: [], rateLimits: [] };
