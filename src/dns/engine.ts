import type { Logger } from 'pino';
import type { StateView } from '../state/view';
import { performance } from 'node:perf_hooks';
import { answerFromState, shuffleInPlace, type AnswerSettings, type DnsClient } from './answer';
import type { Forwarder } from './forwarder';
import type { HostIndex } from './host-index';
import { answerCount, errorResponse, meshAnswer, parseQuery, RCODE, type Query } from './message';
import type { DnsFailureReason, DnsMetrics } from './metrics';

export interface DnsEngineOptions {
  readonly state: StateView;
  readonly index: HostIndex;
  readonly metrics: DnsMetrics;
  /** Scope `dns`: one DEBUG line per query with the decision (as ztunnel's `dns` target). */
  readonly logger: Logger;
  readonly settings: AnswerSettings;
  /** Forwarded queries waiting for an upstream, over every server of the node; more get SERVFAIL at once. */
  readonly maxInFlight: number;
  readonly shuffle?: (ips: string[]) => void;
}

/** A response to send, with the query it answers (null when the query could not be read). */
export interface DnsReply {
  readonly bytes: Buffer;
  readonly query: Query | null;
}

/**
 * The decision for one query, shared by every DNS listener of the node: read it (FORMERR,
 * NOTIMP or drop when it is not a query we serve), answer mesh names from the state, forward
 * the rest through the listener's forwarder. Memory is bounded: local answers are
 * synchronous, and at most `maxInFlight` forwarded queries wait at any time.
 */
export class DnsEngine {
  private inFlight = 0;

  constructor(private readonly o: DnsEngineOptions) {}

  get forwardedInFlight(): number {
    return this.inFlight;
  }

  /**
   * The reply to one query. Mesh answers and errors are synchronous (no promise per query on
   * the common path); only a forwarded query returns a promise.
   */
  handle(raw: Buffer, protocol: 'udp' | 'tcp', src: string, client: DnsClient | undefined, forwarder: Forwarder): DnsReply | null | Promise<DnsReply> {
    const parsed = parseQuery(raw);
    if (!parsed.ok) {
      this.o.metrics.failure('DNS_MALFORMED');
      this.log(protocol, src, client, null, parsed.reply ? 'malformed query answered FORMERR/NOTIMP' : 'malformed query dropped', 0, { reason: 'DNS_MALFORMED', error: parsed.why });
      return parsed.reply ? { bytes: parsed.reply, query: null } : null;
    }
    const q = parsed.query;
    this.o.metrics.request(q.type, protocol, client);
    if (!client) {
      // ztunnel answers SERVFAIL: without the client's namespace no answer can be right.
      return this.fail(q, protocol, src, client, 'DNS_UNKNOWN_CLIENT', 'no workload is known for this listener or source address');
    }
    const local = q.class === 'IN' ? answerFromState(this.o.state, this.o.index, client, q.name, q.type, this.o.settings, this.o.shuffle ?? shuffleInPlace) : ({ kind: 'forward' } as const);
    if (local.kind === 'answer') {
      this.log(protocol, src, client, q, local.result, local.addresses, { matched: local.matched });
      return { bytes: meshAnswer(q, local.records), query: q };
    }
    if (this.inFlight >= this.o.maxInFlight) return this.fail(q, protocol, src, client, 'DNS_OVERLOAD', `${this.inFlight} forwarded queries already wait for an upstream`);
    return this.forward(q, raw, protocol, src, client, forwarder);
  }

  private async forward(q: Query, raw: Buffer, protocol: 'udp' | 'tcp', src: string, client: DnsClient, forwarder: Forwarder): Promise<DnsReply> {
    this.inFlight++;
    this.o.metrics.upstreamRequest(q.type, protocol, client);
    const t0 = performance.now();
    try {
      const r = await forwarder.forward(q, raw);
      this.o.metrics.upstreamDuration(q.type, protocol, client, (performance.now() - t0) / 1000);
      if (!r.ok) {
        this.o.metrics.upstreamFailure(q.type, protocol, client);
        return this.fail(q, protocol, src, client, r.reason, r.detail);
      }
      this.log(protocol, src, client, q, 'forwarded', answerCount(r.response), { upstream: `${r.upstream.ip}:${r.upstream.port}`, upstreamTransport: r.transport, ...(r.tcpFallback ? { tcpFallback: true } : {}) });
      return { bytes: r.response, query: q };
    } finally {
      this.inFlight--;
    }
  }

  private fail(q: Query, protocol: 'udp' | 'tcp', src: string, client: DnsClient | undefined, reason: DnsFailureReason, detail: string): DnsReply {
    this.o.metrics.failure(reason);
    this.log(protocol, src, client, q, 'SERVFAIL', 0, { reason, error: detail });
    return { bytes: errorResponse(q, RCODE.SERVFAIL), query: q };
  }

  private log(protocol: string, src: string, client: DnsClient | undefined, q: Query | null, result: string, endpoints: number, extra: Record<string, unknown>): void {
    if (!this.o.logger.isLevelEnabled('debug')) return;
    this.o.logger.debug(
      { 'src.addr': src, 'src.workload': client?.name ?? 'unknown', 'src.namespace': client?.namespace ?? 'unknown', protocol, query: q?.type ?? null, domain: q?.name ?? null, result, endpoints, ...extra },
      'dns query',
    );
  }
}
