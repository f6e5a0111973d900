import type { Workload } from '../../state/types';
import type { DownReq } from '../body';
import type { Endpoint } from '../l7/decide';
import type { L7Peer, L7Request } from '../l7/request';
import { ReplayableBody } from './body-replay';
import { endpointKey, type Cluster, type EndpointStats } from './cluster';
import type { TrafficManager } from './manager';
import type { TrafficPlan } from './plan';
import { backoffMs, isRetriable, retryBudget, type TryOutcome } from './retry';

/** A response the waypoint makes itself on behalf of traffic management. */
export interface LocalAnswer {
  readonly status: number;
  readonly body: string;
  readonly flags: string;
  readonly details: string;
  /** Answer as gRPC with this status (fault abort grpcStatus). */
  readonly grpcStatus?: number;
  readonly headers?: Record<string, string>;
  /** The upstream error behind a failure answer, for the access log. */
  readonly error?: string;
}

/** What the HTTP proxy does for a run: send one try, make a local reply, time the request out. */
export interface TrafficHooks {
  send(ep: Endpoint, tryNo: number): void;
  reply(a: LocalAnswer): void;
  timeout(): void;
  /** Aborts the current try's upstream request, if one is open. */
  abort(): void;
}

export interface RunContext {
  readonly body: DownReq;
  readonly http1: boolean;
  readonly request: L7Request;
  readonly peer: L7Peer;
  readonly srcWorkload: Workload | null;
  readonly family: 4 | 6;
}

interface CurrentTry {
  readonly ep: Endpoint;
  readonly stats: EndpointStats;
  connected: boolean;
}

/**
 * One request under traffic management, in Envoy's filter order: local rate limit,
 * fault delay then abort, circuit breaker admission (or the pending queue), then tries:
 * each picks an endpoint (subset, outlier detection, load balancer; a retry prefers an
 * endpoint not yet tried), has its own per-try and connect timers, and reports its
 * outcome to outlier detection; a retriable outcome is retried after a jittered back-off
 * while attempts, the retry budget and the request body's replay buffer allow. Flags
 * (DI, FI, RL, UO, URX, UT, UF, UH) join the request's record when it finishes.
 */
export class TrafficRun {
  tryNo = 0;
  readonly body: ReplayableBody | null;
  private readonly flags: string[] = [];
  private readonly tried = new Set<string>();
  private retriesDone = 0;
  private holdsSlot = false;
  private holdsRetry = false;
  private cancelWait: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tryTimer: NodeJS.Timeout | null = null;
  private overall: NodeJS.Timeout | null = null;
  private current: CurrentTry | null = null;
  private done = false;
  /** The `x-ratelimit-*` headers for an admitted response, when a rate limit applies. */
  rateLimitHeaders: Readonly<Record<string, string>> | null = null;
  private lastError: string | undefined;
  private hooks!: TrafficHooks;
  readonly cluster: Cluster;

  constructor(
    private readonly m: TrafficManager,
    readonly plan: TrafficPlan,
    private readonly ctx: RunContext,
  ) {
    this.cluster = m.cluster(plan);
    this.body = plan.retry ? new ReplayableBody(ctx.body) : null;
  }

  start(hooks: TrafficHooks): void {
    this.hooks = hooks;
    const now = this.m.o.now();
    let tightest: ReturnType<TrafficManager['bucket']> | null = null;
    for (const l of this.plan.limits) {
      const b = this.m.bucket(l.key, l.limit);
      if (!b.take(now)) {
        this.m.rateLimited.labels(l.key).inc();
        return this.answer({ status: 429, body: 'local_rate_limited', flags: 'RL', details: `local_rate_limited (${l.limit.meta.namespace}/${l.limit.meta.name} on ${l.what})`, headers: b.headers(now) });
      }
      if (!tightest || b.remaining(now) < tightest.remaining(now)) tightest = b;
    }
    // Admitted responses carry the limit too (as Envoy's local rate limit with x-ratelimit
    // headers on), from the bucket closest to running dry, so clients can pace themselves.
    if (tightest) this.rateLimitHeaders = tightest.headers(now);
    const delay = this.plan.fault?.delay;
    if (delay && this.m.o.random() * 100 < delay.percent) {
      this.flags.push('DI');
      this.timer = setTimeout(() => this.afterDelay(), delay.fixedDelayMs);
      return;
    }
    this.afterDelay();
  }

  private afterDelay(): void {
    this.timer = null;
    if (this.done) return;
    const abort = this.plan.fault?.abort;
    if (abort && this.m.o.random() * 100 < abort.percent) {
      return this.answer({ status: abort.httpStatus ?? 200, body: 'fault filter abort', flags: 'FI', details: 'fault_filter_abort', ...(abort.grpcStatus !== null ? { grpcStatus: abort.grpcStatus } : {}) });
    }
    if (this.plan.timeoutMs !== null) this.overall = setTimeout(() => this.hooks.timeout(), this.plan.timeoutMs);
    const a = this.cluster.admit(this.ctx.http1);
    if (a.kind === 'overflow') {
      this.m.overflows.labels(this.cluster.key, a.limit).inc();
      return this.answer({ status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', flags: 'UO', details: `upstream_reset_before_response_started{overflow} (${a.limit} of ${this.cluster.key})` });
    }
    if (a.kind === 'go') {
      this.holdsSlot = true;
      return this.sendTry();
    }
    this.cancelWait = a.cancel;
    void a.promise.then(() => {
      this.cancelWait = null;
      this.holdsSlot = true;
      // The client may have left while queued: give the slot straight back.
      if (this.done) this.releaseSlot();
      else this.sendTry();
    });
  }

  private sendTry(): void {
    const pick = this.m.pick(this.plan, this.cluster, this.ctx.srcWorkload, this.ctx.family, this.hashKey(), this.tried);
    if (!pick.ok) return this.answer({ status: 503, body: 'no healthy upstream', flags: 'UH', details: pick.why });
    const ep = pick.endpoint;
    this.tried.add(endpointKey(ep));
    const stats = this.cluster.stats(ep);
    stats.active++;
    this.current = { ep, stats, connected: false };
    const no = this.tryNo;
    const perTry = this.plan.retry?.perTryTimeoutMs ?? null;
    const connect = this.plan.policy.connectionPool?.connectTimeoutMs ?? null;
    if (perTry !== null || connect !== null) {
      const first = perTry !== null && (connect === null || perTry <= connect) ? 'per-try-timeout' : 'connect-failure';
      this.tryTimer = setTimeout(() => this.onTimer(no, first, perTry, connect), Math.min(perTry ?? Infinity, connect ?? Infinity));
    }
    this.hooks.send(ep, no);
  }

  /** The first of the per-try and connect timers fired; a connect timer that fires after connecting re-arms for the per-try rest. */
  private onTimer(no: number, kind: 'per-try-timeout' | 'connect-failure', perTry: number | null, connect: number | null): void {
    this.tryTimer = null;
    if (no !== this.tryNo || this.done) return;
    if (kind === 'connect-failure' && this.current?.connected) {
      if (perTry !== null && connect !== null && perTry > connect) this.tryTimer = setTimeout(() => this.onTimer(no, 'per-try-timeout', perTry, null), perTry - connect);
      return;
    }
    this.conclude({ kind });
    this.hooks.abort();
  }

  /** Whether events of try `no` are from an abandoned try. */
  stale(no: number): boolean {
    return no !== this.tryNo;
  }

  /** The try's connection is up (HTTP/1.1 socket assigned, HTTP/2 session open). */
  connected(no: number): void {
    if (no === this.tryNo && this.current) this.current.connected = true;
  }

  /** Response headers of try `no`: true = retrying (the proxy discards this response). */
  onResponse(no: number, status: number, grpcStatus: string | string[] | undefined): boolean {
    if (no !== this.tryNo || this.done) return false;
    const g = typeof grpcStatus === 'string' && /^\d+$/.test(grpcStatus) ? Number(grpcStatus) : null;
    return this.conclude({ kind: 'response', status, grpcStatus: g });
  }

  /** Try `no` failed before response headers. Always handled here: a retry, or the final local reply. */
  onError(no: number, refusedStream: boolean, error: string): boolean {
    if (no !== this.tryNo || this.done) return true;
    this.lastError = error;
    this.conclude({ kind: this.current?.connected ? (refusedStream ? 'refused-stream' : 'reset') : 'connect-failure' });
    return true;
  }

  /**
   * A try ended: outlier detection hears of it; a retriable outcome is retried when
   * attempts, the budget and the body allow (true); a failure without retry becomes the
   * local reply; a response without retry is relayed (false).
   */
  private conclude(o: TryOutcome): boolean {
    const cur = this.current;
    this.endTry();
    if (cur) this.m.outcome(this.cluster, cur.ep, o);
    if (this.retry(o)) return true;
    if (o.kind !== 'response') this.failed(o);
    return false;
  }

  private retry(o: TryOutcome): boolean {
    const p = this.plan.retry;
    if (!p || !isRetriable(p, o)) return false;
    const c = this.cluster;
    if (this.retriesDone >= p.attempts) {
      this.flags.push('URX');
      this.m.retries.labels(c.key, 'exhausted').inc();
      return false;
    }
    // Never replay a body that outgrew the buffer: the retry would send it truncated.
    if (this.body && !this.body.replayable) return false;
    if (!this.holdsRetry) {
      if (c.retries >= retryBudget(c.active, this.plan.policy.connectionPool?.maxRetries ?? null)) {
        this.flags.push('UO');
        this.m.retries.labels(c.key, 'overflow').inc();
        this.m.overflows.labels(c.key, 'retry_budget').inc();
        return false;
      }
      c.retries++;
      this.holdsRetry = true;
    }
    this.retriesDone++;
    this.tryNo++;
    this.body?.detach();
    this.m.retries.labels(c.key, 'retried').inc();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.done) this.sendTry();
    }, backoffMs(p, this.retriesDone, this.m.o.random));
    return true;
  }

  private failed(o: Exclude<TryOutcome, { kind: 'response' }>): void {
    if (o.kind === 'per-try-timeout') return this.answer({ status: 504, body: 'upstream request timeout', flags: 'UT', details: 'upstream_per_try_timeout' });
    const reason = o.kind === 'connect-failure' ? 'connection failure' : o.kind === 'refused-stream' ? 'refused stream' : 'connection termination';
    this.answer({ status: 503, body: `upstream connect error or disconnect/reset before headers. reset reason: ${reason}`, flags: o.kind === 'connect-failure' ? 'UF' : 'UC', details: `upstream_reset_before_response_started{${reason.replace(/ /g, '_')}}`, ...(this.lastError ? { error: this.lastError } : {}) });
  }

  private answer(a: LocalAnswer): void {
    const flags = [...this.flags, a.flags].join(',');
    this.flags.length = 0;
    this.hooks.reply({ ...a, flags });
  }

  private endTry(): void {
    if (this.tryTimer) clearTimeout(this.tryTimer);
    this.tryTimer = null;
    if (this.current) this.current.stats.active--;
    this.current = null;
  }

  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.cluster.release(this.ctx.http1);
  }

  /** The request's record is being written: free everything and hand over the flags. */
  finish(recFlags: string): string {
    if (this.done) return recFlags;
    this.done = true;
    this.cancelWait?.();
    if (this.timer) clearTimeout(this.timer);
    if (this.overall) clearTimeout(this.overall);
    this.endTry();
    this.body?.detach();
    if (this.holdsRetry) this.cluster.retries--;
    this.releaseSlot();
    if (this.flags.length === 0) return recFlags;
    return recFlags === '-' ? this.flags.join(',') : [...this.flags, recFlags].join(',');
  }

  private hashKey(): string | null {
    const lb = this.plan.policy.loadBalancer;
    if (lb?.kind !== 'hash') return null;
    const by = lb.by;
    if ('header' in by) return this.ctx.request.headers[by.header] ?? null;
    if ('sourceIp' in by) return clientIp(this.ctx.peer.remoteIp);
    const cookies = this.ctx.request.headers['cookie'] ?? '';
    for (const part of cookies.split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === by.cookie) return part.slice(i + 1).trim();
    }
    return null;
  }
}

/** The address part of the original client (the forwarded value may carry `ip:port` or `[v6]:port`). */
function clientIp(addr: string): string {
  const v6 = /^\[([^\]]+)\]/.exec(addr);
  if (v6) return v6[1] as string;
  const i = addr.indexOf(':');
  return i > 0 && addr.indexOf(':', i + 1) === -1 ? addr.slice(0, i) : addr;
}
