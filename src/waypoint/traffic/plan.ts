import type { Service } from '../../state/types';
import type { StateView } from '../../state/view';
import type { L7Config } from '../config/types';
import { findService, type L7Decision, type L7Target } from '../l7/decide';
import type { L7Peer, L7Request } from '../l7/request';
import { matchString } from './schema-util';
import type { DestinationRule, FaultPolicy, LocalRateLimit, RetryPolicy, Subset, TrafficPolicy, VirtualService, VsHttpRoute, VsMatch } from './types';
import { DEFAULT_BACKOFF_MS } from './vs-schema';

type Forward = Extract<L7Decision, { kind: 'forward' }>;

/** Istio's retry policy for routes that do not set one. */
export const ISTIO_DEFAULT_RETRY: RetryPolicy = {
  attempts: 2,
  perTryTimeoutMs: null,
  retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
  statusCodes: [503],
  backoffBaseMs: DEFAULT_BACKOFF_MS,
  source: "Istio's default (the VirtualService route sets no retries)",
};

/** A rate-limit bucket that applies: the object, which of its targets, and the bucket key. */
export interface AppliedLimit {
  readonly limit: LocalRateLimit;
  readonly key: string;
  readonly what: string;
}

/** Everything traffic management decides for one forwarded request, pure over config and state. */
export interface TrafficPlan {
  /** The VirtualService http route that routed the request, if one did. */
  readonly vs: { readonly vs: VirtualService; readonly rule: VsHttpRoute } | null;
  readonly backend: Service;
  readonly port: number;
  readonly rule: DestinationRule | null;
  readonly subset: Subset | null;
  /** Circuit-breaker / load-balancer / outlier scope: `host|port|subset`. */
  readonly cluster: string;
  readonly policy: TrafficPolicy;
  readonly retry: RetryPolicy | null;
  readonly timeoutMs: number | null;
  readonly fault: FaultPolicy | null;
  readonly limits: readonly AppliedLimit[];
  readonly details: string;
}

export type PlanResult = { readonly kind: 'none' } | { readonly kind: 'plan'; readonly plan: TrafficPlan } | { readonly kind: 'local'; readonly status: number; readonly flags: string; readonly body: string; readonly details: string };

export interface PlanInput {
  readonly config: L7Config;
  readonly state: StateView;
  readonly clusterDomain: string;
  readonly target: L7Target;
  readonly decision: Forward;
  readonly request: L7Request;
  readonly peer: L7Peer;
  /** [0,1) for the VirtualService's weighted destinations. */
  readonly random: () => number;
}

const NONE: PlanResult = { kind: 'none' };

/**
 * Applies VirtualService, DestinationRule and LocalRateLimit to a request the L7 decision
 * forwards. A VirtualService routes only Service-addressed requests that no HTTPRoute
 * claimed (Gateway API routes win). "none" when nothing applies, so plain traffic pays
 * only these lookups.
 */
export function planTraffic(i: PlanInput): PlanResult {
  const t = i.config.traffic;
  const d = i.decision;
  if (t.virtualServices.length === 0 && t.destinationRules.length === 0 && t.rateLimits.length === 0 && !d.route?.rule.retry) return NONE;
  if (!d.backend || i.target.kind !== 'service') return NONE;
  let backend = d.backend;
  let port = d.backendPort;
  let subsetName: string | null = null;
  let vsHit: TrafficPlan['vs'] = null;
  let details = d.details;
  if (d.route === null) {
    const vs = virtualServiceFor(t.virtualServices, i.target.service, i.clusterDomain);
    if (vs) {
      const rule = vs.http.find((h) => h.match.length === 0 || h.match.some((m) => matches(m, i.request, i.peer)));
      const at = `VirtualService ${vs.meta.namespace}/${vs.meta.name}`;
      if (!rule) return { kind: 'local', status: 404, flags: 'NR', body: '', details: `route_not_found (${at}: no http route matches)` };
      const dest = pickWeighted(rule.route, i.random);
      const host = qualify(dest.host, vs.meta.namespace, i.clusterDomain);
      const svc = i.state.findServiceByHostname(vs.meta.namespace, host) ?? findByFqdn(i, host);
      if (!svc) return { kind: 'local', status: 503, flags: 'NC', body: 'no healthy upstream', details: `${at} http[${rule.index}]: destination host ${dest.host} is not a known Service` };
      backend = svc;
      port = dest.port ?? port;
      subsetName = dest.subset;
      vsHit = { vs, rule };
      details = `${at} http[${rule.index}]${rule.name ? ` (${rule.name})` : ''} → ${svc.namespace}/${svc.name}:${port}${subsetName ? ` subset ${subsetName}` : ''}`;
    }
  }
  const rule = destinationRuleFor(t.destinationRules, backend, i.clusterDomain);
  const subset = subsetName ? (rule?.subsets.find((s) => s.name === subsetName) ?? null) : null;
  if (subsetName && !subset) return { kind: 'local', status: 503, flags: 'NC', body: 'no healthy upstream', details: `subset ${JSON.stringify(subsetName)} of ${backend.hostname} is not defined by any DestinationRule` };
  const policy = mergePolicy(rule?.trafficPolicy ?? null, subset?.trafficPolicy ?? null);
  const limits = rateLimitsFor(t.rateLimits, i.target.service, d, vsHit);
  if (!vsHit && !rule && limits.length === 0 && !d.route?.rule.retry) return NONE;
  const retry = vsHit ? (vsHit.rule.retries ?? ISTIO_DEFAULT_RETRY) : httpRouteRetry(d);
  // Gateway API: with a retry stanza, backendRequest bounds each try and request the whole.
  const gwRule = d.route?.rule;
  const timeoutMs = vsHit ? vsHit.rule.timeoutMs : gwRule?.retry ? gwRule.requestTimeoutMs : d.timeoutMs;
  const perTry = gwRule?.retry && retry ? { ...retry, perTryTimeoutMs: gwRule.backendTimeoutMs } : retry;
  return {
    kind: 'plan',
    plan: {
      vs: vsHit,
      backend,
      port,
      rule,
      subset,
      cluster: `${backend.hostname}|${port}|${subset?.name ?? ''}`,
      policy,
      retry: perTry && perTry.attempts > 0 ? perTry : null,
      timeoutMs,
      fault: vsHit?.rule.fault ?? null,
      limits,
      details,
    },
  };
}

function httpRouteRetry(d: Forward): RetryPolicy | null {
  const r = d.route?.rule.retry;
  if (!r) return null;
  return {
    attempts: r.attempts,
    perTryTimeoutMs: null,
    retryOn: ['connect-failure', 'reset', 'retriable-status-codes'],
    statusCodes: r.codes,
    backoffBaseMs: r.backoffMs ?? DEFAULT_BACKOFF_MS,
    source: `${d.route?.route.kind} ${d.route?.route.meta.namespace}/${d.route?.route.meta.name} rule ${d.route?.rule.index} retry`,
  };
}

/** Istio host resolution: a short name is in the object's namespace; `name.ns` is a Service in ns. */
export function qualify(host: string, ns: string, domain: string): string {
  if (host.includes('*')) return host;
  const parts = host.split('.');
  if (parts.length === 1) return `${host}.${ns}.svc.${domain}`;
  if (parts.length === 2) return `${host}.svc.${domain}`;
  return host;
}

function hostMatches(pattern: string, hostname: string): boolean {
  return pattern === '*' || pattern === hostname || (pattern.startsWith('*.') && hostname.endsWith(pattern.slice(1)));
}

function findByFqdn(i: PlanInput, host: string): Service | undefined {
  const m = /^([^.]+)\.([^.]+)\.svc\./.exec(host);
  return m ? findService(i.state, m[1] as string, m[2] as string, i.clusterDomain) : undefined;
}

/** Oldest first, then by namespace/name: Istio's order when several objects claim a host. */
function byAge<T extends { meta: { createdMs: number | null; namespace: string; name: string } }>(a: T, b: T): number {
  const ta = a.meta.createdMs ?? Infinity;
  const tb = b.meta.createdMs ?? Infinity;
  if (ta !== tb) return ta - tb;
  return `${a.meta.namespace}/${a.meta.name}`.localeCompare(`${b.meta.namespace}/${b.meta.name}`);
}

export function virtualServiceFor(all: readonly VirtualService[], svc: Service, domain: string): VirtualService | null {
  const hits = all.filter((v) => v.hosts.some((h) => hostMatches(qualify(h, v.meta.namespace, domain), svc.hostname)));
  return hits.length === 0 ? null : ([...hits].sort(byAge)[0] as VirtualService);
}

export function destinationRuleFor(all: readonly DestinationRule[], svc: Service, domain: string): DestinationRule | null {
  const hits = all.filter((r) => hostMatches(qualify(r.host, r.meta.namespace, domain), svc.hostname));
  if (hits.length === 0) return null;
  // An exact host wins over a wildcard; then the oldest.
  const exact = hits.filter((r) => !r.host.includes('*'));
  return ([...(exact.length > 0 ? exact : hits)].sort(byAge)[0] as DestinationRule) ?? null;
}

/** A subset's policy overrides the rule's field by field. */
function mergePolicy(top: TrafficPolicy | null, sub: TrafficPolicy | null): TrafficPolicy {
  return {
    connectionPool: sub?.connectionPool ?? top?.connectionPool ?? null,
    outlierDetection: sub?.outlierDetection ?? top?.outlierDetection ?? null,
    loadBalancer: sub?.loadBalancer ?? top?.loadBalancer ?? null,
  };
}

function rateLimitsFor(all: readonly LocalRateLimit[], svc: Service, d: Forward, vs: TrafficPlan['vs']): AppliedLimit[] {
  const out: AppliedLimit[] = [];
  for (const l of all) {
    l.targets.forEach((t, ti) => {
      let hit = false;
      if (t.kind === 'Service') hit = t.name === svc.name && t.namespace === svc.namespace;
      else if (t.kind === 'HTTPRoute') hit = d.route?.route.kind === 'HTTPRoute' && d.route.route.meta.name === t.name && d.route.route.meta.namespace === t.namespace;
      else if (t.kind === 'VirtualService') hit = vs !== null && vs.vs.meta.name === t.name && vs.vs.meta.namespace === t.namespace && (t.sectionName === null || t.sectionName === vs.rule.name);
      if (hit) out.push({ limit: l, key: `${l.meta.namespace}/${l.meta.name}#${ti}`, what: `${t.kind} ${t.namespace}/${t.name}${t.kind === 'VirtualService' && t.sectionName ? `#${t.sectionName}` : ''}` });
    });
  }
  return out;
}

function pickWeighted<T extends { weight: number }>(items: readonly T[], random: () => number): T {
  if (items.length === 1) return items[0] as T;
  const total = items.reduce((s, x) => s + x.weight, 0);
  let x = random() * total;
  for (const it of items) {
    if (x < it.weight) return it;
    x -= it.weight;
  }
  return items.filter((b) => b.weight > 0).at(-1) as T;
}

function matches(m: VsMatch, r: L7Request, p: L7Peer): boolean {
  if (m.uri) {
    const path = m.ignoreUriCase ? r.path.toLowerCase() : r.path;
    const mm = m.ignoreUriCase && m.uri.kind !== 'regex' ? { ...m.uri, value: m.uri.value.toLowerCase() } : m.uri;
    if (!matchString(mm, path)) return false;
  }
  if (m.method && !matchString(m.method, r.method)) return false;
  if (m.authority && !matchString(m.authority, r.host)) return false;
  if (m.port !== null && m.port !== p.destinationPort) return false;
  if (m.sourceNamespace !== null && m.sourceNamespace !== p.namespace) return false;
  for (const h of m.headers) if (!matchString(h.match, r.headers[h.name])) return false;
  for (const h of m.withoutHeaders) if (matchString(h.match, r.headers[h.name])) return false;
  if (m.queryParams.length > 0) {
    const q = new URLSearchParams(r.query);
    for (const qp of m.queryParams) if (!matchString(qp.match, q.get(qp.name) ?? undefined)) return false;
  }
  return true;
}
