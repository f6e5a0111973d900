import { formatSocketAddr } from '../../util/socket-addr';
import type { Endpoint } from '../l7/decide';
import type { ConnectionPool, LoadBalancer, OutlierDetection } from './types';

/** Per-endpoint counters of one cluster: requests in flight and the outlier detector's state. */
export class EndpointStats {
  active = 0;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  /** 0 = not ejected; else the time (ms) it may return. */
  ejectedUntil = 0;
  /** Ejections so far: each ejection lasts baseEjectionTime × this. */
  ejections = 0;
  constructor(readonly key: string) {}
}

export type Admission = { readonly kind: 'go' } | { readonly kind: 'wait'; readonly promise: Promise<void>; readonly cancel: () => void } | { readonly kind: 'overflow'; readonly limit: string };

/**
 * One cluster (Envoy's word): a destination host, port and subset. Holds its circuit
 * breaker counters (requests in flight, HTTP/1.1 requests holding a connection, the
 * pending queue, retries in flight), its round-robin cursor and its endpoints' stats.
 */
export class Cluster {
  active = 0;
  activeH1 = 0;
  retries = 0;
  private rr = 0;
  private readonly queue: { resolve: () => void; h1: boolean }[] = [];
  readonly endpoints = new Map<string, EndpointStats>();
  pool: ConnectionPool | null = null;
  outlier: OutlierDetection | null = null;
  /** Endpoints in the last pick's candidate list (outlier detection's maxEjectionPercent base). */
  size = 0;

  constructor(readonly key: string) {}

  stats(ep: Endpoint): EndpointStats {
    const k = endpointKey(ep);
    let s = this.endpoints.get(k);
    if (!s) {
      s = new EndpointStats(k);
      this.endpoints.set(k, s);
    }
    return s;
  }

  /**
   * Circuit breaking: past http2MaxRequests in flight → overflow; an HTTP/1.1 request
   * needs one of tcp.maxConnections connections, else it waits in a queue of at most
   * http1MaxPendingRequests (beyond → overflow).
   */
  admit(h1: boolean): Admission {
    const p = this.pool;
    if (p?.http2MaxRequests != null && this.active >= p.http2MaxRequests) return { kind: 'overflow', limit: 'http2MaxRequests' };
    if (h1 && p?.maxConnections != null && this.activeH1 >= p.maxConnections) {
      if (p.http1MaxPendingRequests != null && this.queue.length >= p.http1MaxPendingRequests) return { kind: 'overflow', limit: 'http1MaxPendingRequests' };
      let entry!: { resolve: () => void; h1: boolean };
      const promise = new Promise<void>((resolve) => {
        entry = { resolve, h1 };
        this.queue.push(entry);
      });
      const cancel = (): void => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
      };
      return { kind: 'wait', promise, cancel };
    }
    this.take(h1);
    return { kind: 'go' };
  }

  private take(h1: boolean): void {
    this.active++;
    if (h1) this.activeH1++;
  }

  /** A request admitted by `admit` is done: its slot goes to the next waiting request. */
  release(h1: boolean): void {
    this.active--;
    if (h1) this.activeH1--;
    const next = this.queue.shift();
    if (next) {
      this.take(next.h1);
      next.resolve();
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Round robin / least request / random / consistent hash among `eps` (never empty). */
  choose(eps: readonly Endpoint[], lb: LoadBalancer | null, hashKey: string | null, random: () => number): Endpoint {
    if (eps.length === 1) return eps[0] as Endpoint;
    if (lb?.kind === 'hash' && hashKey !== null) {
      let best = eps[0] as Endpoint;
      let bestScore = -1;
      for (const ep of eps) {
        const score = fnv1a(`${hashKey}|${endpointKey(ep)}`);
        if (score > bestScore) {
          bestScore = score;
          best = ep;
        }
      }
      return best;
    }
    const simple = lb?.kind === 'simple' ? lb.simple : lb ? 'RANDOM' : 'LEAST_REQUEST';
    if (simple === 'ROUND_ROBIN') return eps[this.rr++ % eps.length] as Endpoint;
    if (simple === 'RANDOM') return eps[Math.floor(random() * eps.length)] as Endpoint;
    // LEAST_REQUEST: the fewer-active of two random choices (Envoy's power of two choices).
    const a = eps[Math.floor(random() * eps.length)] as Endpoint;
    let b = eps[Math.floor(random() * eps.length)] as Endpoint;
    if (b === a) b = eps[(eps.indexOf(a) + 1) % eps.length] as Endpoint;
    return this.stats(b).active < this.stats(a).active ? b : a;
  }
}

export function endpointKey(ep: Pick<Endpoint, 'workload' | 'ip' | 'targetPort'>): string {
  return `${ep.workload.uid}|${formatSocketAddr({ ip: ep.ip, port: ep.targetPort })}`;
}

/** FNV-1a, 32-bit: a cheap stable hash for rendezvous hashing. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
