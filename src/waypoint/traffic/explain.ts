import type { L7Decision } from '../l7/decide';
import { planTraffic, type PlanInput } from './plan';

/**
 * /debug/explain's "traffic" part: which VirtualService route, DestinationRule (subset,
 * connection pool, outlier detection, load balancer), retry policy, timeouts, fault and
 * rate limits apply to the request. Pure: explains without touching live state.
 */
export function explainTraffic(i: Omit<PlanInput, 'decision'> & { readonly decision: L7Decision }): unknown {
  if (i.decision.kind !== 'forward') return null;
  const p = planTraffic({ ...i, decision: i.decision });
  if (p.kind === 'none') return { applies: false, why: 'no VirtualService, DestinationRule, LocalRateLimit or HTTPRoute retry applies' };
  if (p.kind === 'local') return { applies: true, response: { status: p.status, flags: p.flags, details: p.details } };
  const t = p.plan;
  return {
    applies: true,
    details: t.details,
    virtualService: t.vs ? { name: `${t.vs.vs.meta.namespace}/${t.vs.vs.meta.name}`, source: t.vs.vs.meta.source, http: t.vs.rule.index, routeName: t.vs.rule.name } : null,
    destinationRule: t.rule ? { name: `${t.rule.meta.namespace}/${t.rule.meta.name}`, source: t.rule.meta.source, subset: t.subset?.name ?? null, labels: t.subset?.labels ?? null } : null,
    cluster: t.cluster,
    retry: t.retry ? { attempts: t.retry.attempts, retryOn: [...t.retry.retryOn, ...t.retry.statusCodes.map(String)], perTryTimeoutMs: t.retry.perTryTimeoutMs, backoffBaseMs: t.retry.backoffBaseMs, from: t.retry.source } : null,
    timeoutMs: t.timeoutMs,
    fault: t.fault,
    rateLimits: t.limits.map((l) => ({ limit: `${l.limit.meta.namespace}/${l.limit.meta.name}`, target: l.what, maxTokens: l.limit.maxTokens, tokensPerFill: l.limit.tokensPerFill, fillIntervalMs: l.limit.fillIntervalMs })),
    connectionPool: t.policy.connectionPool,
    outlierDetection: t.policy.outlierDetection,
    loadBalancer: t.policy.loadBalancer ?? { kind: 'simple', simple: 'LEAST_REQUEST', default: true },
  };
}
