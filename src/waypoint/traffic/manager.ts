import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { candidateEndpoints } from '../../state/load-balance';
import { expectedIdentities } from '../../state/service-endpoint';
import type { Workload } from '../../state/types';
import type { StateView } from '../../state/view';
import type { L7Config } from '../config/types';
import type { Endpoint } from '../l7/decide';
import { Cluster, endpointKey } from './cluster';
import { selects } from './labels';
import { admitted, countEjected, recordOutcome, sweep } from './outlier';
import type { TrafficPlan } from './plan';
import { TokenBucket } from './rate-limit';
import type { TryOutcome } from './retry';

export interface TrafficManagerOptions {
  readonly state: StateView;
  readonly config: () => L7Config;
  readonly network: string;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly random: () => number;
  /** Monotonic ms. */
  readonly now: () => number;
}

export type EndpointChoice = { readonly ok: true; readonly endpoint: Endpoint } | { readonly ok: false; readonly why: string };

/**
 * The waypoint's traffic-management state, shared by every request: clusters (circuit
 * breakers, load-balancer cursors, outlier detection), token buckets, and their metrics.
 * The single writer is the request path (one thread); the outlier sweep runs on a timer
 * per cluster while an endpoint of it is ejected.
 */
export class TrafficManager {
  private readonly clusters = new Map<string, Cluster>();
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly sweeps = new Map<string, NodeJS.Timeout>();
  readonly ejections: Counter<'cluster'>;
  readonly overflows: Counter<'cluster' | 'limit'>;
  readonly retries: Counter<'cluster' | 'result'>;
  readonly rateLimited: Counter<'limit'>;

  constructor(readonly o: TrafficManagerOptions) {
    const registers = [o.registry];
    this.ejections = new Counter({ name: 'ztunnel_ts_waypoint_outlier_ejections_total', help: 'Endpoints ejected by outlier detection, by cluster (host|port|subset)', labelNames: ['cluster'], registers });
    const clusters = this.clusters;
    new Gauge({
      name: 'ztunnel_ts_waypoint_outlier_ejected_endpoints',
      help: 'Endpoints currently ejected by outlier detection, by cluster (host|port|subset)',
      labelNames: ['cluster'],
      registers,
      collect(this: Gauge<'cluster'>) {
        this.reset();
        for (const c of clusters.values()) if (c.outlier) this.labels(c.key).set(countEjected(c));
      },
    });
    this.overflows = new Counter({ name: 'ztunnel_ts_waypoint_circuit_breaker_overflows_total', help: 'Requests refused (503 UO) or retries skipped because a DestinationRule connectionPool limit or the retry budget was reached', labelNames: ['cluster', 'limit'], registers });
    this.retries = new Counter({ name: 'ztunnel_ts_waypoint_retries_total', help: 'Retry decisions: retried, overflow (budget or maxRetries), exhausted (attempts used up)', labelNames: ['cluster', 'result'], registers });
    this.rateLimited = new Counter({ name: 'ztunnel_ts_waypoint_rate_limited_total', help: 'Requests refused with 429 (RL) by a LocalRateLimit, by limit (namespace/name#target)', labelNames: ['limit'], registers });
  }

  cluster(plan: TrafficPlan): Cluster {
    let c = this.clusters.get(plan.cluster);
    if (!c) {
      c = new Cluster(plan.cluster);
      this.clusters.set(plan.cluster, c);
    }
    // The newest config's limits apply from the next request on.
    c.pool = plan.policy.connectionPool;
    c.outlier = plan.policy.outlierDetection;
    return c;
  }

  bucket(key: string, spec: ConstructorParameters<typeof TokenBucket>[0]): TokenBucket {
    const cur = this.buckets.get(key);
    if (cur?.sameAs(spec)) return cur;
    const b = new TokenBucket(spec, this.o.now());
    this.buckets.set(key, b);
    return b;
  }

  /**
   * An endpoint of the plan's backend: the state's candidates (health, locality), those
   * selected by the subset's labels, on this network, not ejected, not yet tried by this
   * request when others remain; then the load-balancer policy.
   */
  pick(plan: TrafficPlan, c: Cluster, src: Workload | null, family: 4 | 6, hashKey: string | null, tried: ReadonlySet<string>): EndpointChoice {
    const cand = candidateEndpoints(this.o.state, plan.backend, plan.port, { src, family });
    if (!cand.ok) return { ok: false, why: cand.why };
    const labels = plan.subset?.labels ?? null;
    const eps: Endpoint[] = [];
    for (const e of cand.endpoints) {
      if (labels && !selects(labels, e.workload)) continue;
      if (e.workload.network !== this.o.network) continue;
      eps.push({ workload: e.workload, ip: e.ip, targetPort: e.targetPort, service: plan.backend, expectedIdentities: expectedIdentities(e.workload, plan.backend), hbone: e.workload.protocol === 'HBONE' });
    }
    if (eps.length === 0) return { ok: false, why: `${plan.backend.namespace}/${plan.backend.hostname}${plan.subset ? ` subset ${plan.subset.name}` : ''} has no healthy endpoint on this network` };
    c.size = eps.length;
    const inLb = admitted(c, eps, c.outlier);
    if (inLb.length === 0) return { ok: false, why: `every endpoint of cluster ${c.key} is ejected by outlier detection` };
    const fresh = tried.size === 0 ? inLb : inLb.filter((e) => !tried.has(endpointKey(e)));
    return { ok: true, endpoint: c.choose(fresh.length > 0 ? fresh : inLb, plan.policy.loadBalancer, hashKey, this.o.random) };
  }

  /** Feeds outlier detection with one try's outcome at an endpoint. */
  outcome(c: Cluster, ep: Endpoint, o: TryOutcome): void {
    const od = c.outlier;
    if (!od) return;
    const s = c.stats(ep);
    if (!recordOutcome(c, s, o, od, c.size, this.o.now())) return;
    this.ejections.labels(c.key).inc();
    this.o.logger.info({ cluster: c.key, endpoint: s.key, ejections: s.ejections, forMs: s.ejectedUntil - this.o.now() }, 'outlier detection ejected an endpoint');
    if (!this.sweeps.has(c.key)) {
      const t = setInterval(() => {
        for (const k of sweep(c, this.o.now())) this.o.logger.info({ cluster: c.key, endpoint: k }, 'outlier detection returned an endpoint to the load balancer');
        if (countEjected(c) === 0 && ![...c.endpoints.values()].some((e) => e.ejections > 0)) {
          clearInterval(t);
          this.sweeps.delete(c.key);
        }
      }, od.intervalMs);
      t.unref();
      this.sweeps.set(c.key, t);
    }
  }

  close(): void {
    for (const t of this.sweeps.values()) clearInterval(t);
    this.sweeps.clear();
  }

  /** /config_dump section "traffic": the objects and each cluster's live state. */
  dump(): unknown {
    const now = this.o.now();
    const t = this.o.config().traffic;
    return {
      virtualServices: t.virtualServices.map((v) => ({ name: `${v.meta.namespace}/${v.meta.name}`, source: v.meta.source, hosts: v.hosts, http: v.http })),
      destinationRules: t.destinationRules.map((r) => ({ name: `${r.meta.namespace}/${r.meta.name}`, source: r.meta.source, host: r.host, trafficPolicy: r.trafficPolicy, subsets: r.subsets })),
      rateLimits: t.rateLimits.map((l) => ({ name: `${l.meta.namespace}/${l.meta.name}`, source: l.meta.source, targets: l.targets, maxTokens: l.maxTokens, tokensPerFill: l.tokensPerFill, fillIntervalMs: l.fillIntervalMs })),
      clusters: [...this.clusters.values()].map((c) => ({
        cluster: c.key,
        active: c.active,
        activeHttp1: c.activeH1,
        pending: c.pending,
        retriesActive: c.retries,
        connectionPool: c.pool,
        outlierDetection: c.outlier,
        endpoints: [...c.endpoints.values()].map((s) => ({
          endpoint: s.key,
          active: s.active,
          consecutive5xx: s.consecutive5xx,
          consecutiveGatewayErrors: s.consecutiveGateway,
          ejected: s.ejectedUntil !== 0,
          ...(s.ejectedUntil !== 0 ? { ejectedForMs: Math.max(0, Math.round(s.ejectedUntil - now)) } : {}),
          ejections: s.ejections,
        })),
      })),
      buckets: Object.fromEntries([...this.buckets].map(([k, b]) => [k, b.dump(now)])),
    };
  }
}
