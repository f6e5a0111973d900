import { constants as h2constants } from 'node:http2';
import type { Logger } from 'pino';
import { ProxyError, errorMessage } from '../../errors';
import type { CertificateSource } from '../../identity/types';
import { systemClock, type Clock } from '../../util/clock';
import { formatSocketAddr } from '../../util/socket-addr';
import { DEFAULT_SOCKET_OPTIONS, type SocketOptions } from '../socket-opts';
import { openConnect } from './connect-stream';
import { dialHbone, type DialOptions } from './dialer';
import { h2Tuning, keepaliveOptions, type H2Tuning, type KeepaliveOptions } from './options';
import { PooledSession, type EvictReason } from './session';
import type { HboneClient, HboneStream, HboneTarget } from './types';

export interface HbonePoolOptions {
  readonly certs: CertificateSource;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** POOL_MAX_STREAMS_PER_CONNECTION (100). */
  readonly maxStreamsPerConnection?: number;
  /** POOL_UNUSED_RELEASE_TIMEOUT in ms (5 min). */
  readonly unusedReleaseTimeout?: number;
  /** CONNECT_TIMEOUT in ms (10 s). */
  readonly connectTimeout?: number;
  /** TLS + SETTINGS budget after the TCP connect; defaults to connectTimeout. */
  readonly handshakeTimeout?: number;
  readonly h2?: Partial<H2Tuning>;
  readonly keepalive?: Partial<KeepaliveOptions>;
  readonly socket?: SocketOptions;
}

export interface HbonePoolStats {
  readonly sessions: number;
  readonly activeStreams: number;
  readonly dials: number;
  readonly dialFailures: number;
}

/** A dial in flight and how many more waiting connects it is planned to serve. */
interface PendingDial {
  done: Promise<void>;
  seats: number;
}

/** Sessions of one pool key plus the dials in flight for it. */
interface KeyEntry {
  readonly sessions: PooledSession[];
  readonly dialing: Set<PendingDial>;
}

/** Upper bound on checkout rounds per connect: each round either checks out or waits for one dial. */
const MAX_ROUNDS = 256;

/**
 * The outbound HBONE connection pool (ztunnel src/proxy/pool.rs semantics).
 *
 * Invariants:
 * - key = (source identity, sorted expected identities, next hop, local address, peer
 *   uid). The uid is part of the key, so a pod IP reused by another workload never gets a
 *   connection made for the previous one (istio/ztunnel#1637).
 * - the dials in flight for a key cover the connects waiting for capacity and no more:
 *   each dial has POOL_MAX_STREAMS_PER_CONNECTION seats; a connect that finds no capacity
 *   takes a seat on an in-flight dial, or starts a dial when every seat is taken, then
 *   retries the (synchronous) checkout. A burst of N first connects makes ceil(N / max
 *   streams) dials: one at the default of 100 (no stampede), N handshakes in parallel when
 *   each connection carries one stream (instead of N handshakes one after another).
 *   Nothing is held across the handshake for other keys.
 * - a session is handed out only while `activeStreams < maxStreams`; past the limit a
 *   new session is dialled for the same key, so one key can have N sessions.
 * - GOAWAY, 'error' and 'close' evict synchronously; streams already open finish.
 */
export class HbonePool implements HboneClient {
  private readonly entries = new Map<string, KeyEntry>();
  private readonly all = new Set<PooledSession>();
  private readonly dial: DialOptions;
  private readonly certs: CertificateSource;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly maxStreams: number;
  private readonly idleTimeout: number;
  private readonly keepalive: KeepaliveOptions;
  private closing = false;
  private dials = 0;
  private dialFailures = 0;

  constructor(o: HbonePoolOptions) {
    this.certs = o.certs;
    this.logger = o.logger;
    this.clock = o.clock ?? systemClock;
    this.maxStreams = o.maxStreamsPerConnection ?? 100;
    this.idleTimeout = o.unusedReleaseTimeout ?? 300_000;
    this.keepalive = keepaliveOptions(o.keepalive);
    const connectTimeout = o.connectTimeout ?? 10_000;
    this.dial = {
      clock: this.clock,
      connectTimeout,
      handshakeTimeout: o.handshakeTimeout ?? connectTimeout,
      h2: h2Tuning(o.h2),
      maxHeaderListSize: 16 * 1024,
      socket: o.socket ?? DEFAULT_SOCKET_OPTIONS,
      onSocketOptionError: (err) => this.logger.warn({ err: errorMessage(err) }, 'cannot set SO_MARK on an HBONE connection'),
    };
  }

  async connect(target: HboneTarget): Promise<HboneStream> {
    const key = poolKey(target);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      if (this.closing) throw new ProxyError('DRAINED', 'the HBONE pool is closing; no new streams');
      const session = this.checkout(key);
      if (!session) {
        await this.awaitDial(key, target);
        continue;
      }
      try {
        return await this.open(session, target);
      } catch (err) {
        // REFUSED_STREAM means the peer did not process the stream (RFC 9113 §8.7): the
        // CONNECT raced the peer's GOAWAY (a node proxy handing over in a rolling update),
        // so it is safe to send again on another connection; the GOAWAY evicted this one.
        if (!(err instanceof ProxyError && err.details['rstCode'] === h2constants.NGHTTP2_REFUSED_STREAM)) throw err;
        this.logger.debug({ key, peer: formatSocketAddr(target.nextHop) }, 'CONNECT refused unprocessed (peer going away); retrying on a new connection');
      }
    }
    throw new ProxyError('STREAM_LIMIT', `no HBONE stream capacity to ${formatSocketAddr(target.nextHop)} after ${MAX_ROUNDS} dials`);
  }

  evictPeer(peerUid: string): void {
    for (const s of [...this.all]) if (s.peerUid === peerUid) s.retire('peer-evicted');
  }

  async close(): Promise<void> {
    this.closing = true;
    const sessions = [...this.all];
    for (const s of sessions) s.retire('pool-closed');
    await Promise.all(sessions.map((s) => s.closed()));
  }

  destroy(): void {
    this.closing = true;
    for (const s of [...this.all]) s.destroy();
  }

  stats(): HbonePoolStats {
    let activeStreams = 0;
    for (const s of this.all) activeStreams += s.activeStreams;
    return { sessions: this.all.size, activeStreams, dials: this.dials, dialFailures: this.dialFailures };
  }

  dump(): unknown {
    const out: Record<string, unknown>[] = [];
    for (const [key, e] of this.entries) out.push({ key, dialing: e.dialing.size, sessions: e.sessions.map((s) => s.dump()) });
    return { stats: this.stats(), keys: out };
  }

  /** Synchronous: picks a session with capacity and reserves a stream slot on it. */
  private checkout(key: string): PooledSession | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    for (const s of e.sessions) {
      if (s.available()) {
        s.reserve();
        return s;
      }
    }
    return undefined;
  }

  private async open(session: PooledSession, target: HboneTarget): Promise<HboneStream> {
    let opened;
    try {
      opened = await openConnect(session.h2, target);
    } catch (err) {
      session.release();
      throw err;
    }
    opened.stream.on('close', session.release);
    return { stream: opened.stream, peerIdentity: session.peerIdentity, responseHeaders: opened.responseHeaders };
  }

  /** Takes a seat on an in-flight dial of the key or starts one; rejects with the dial's error. */
  private awaitDial(key: string, target: HboneTarget): Promise<void> {
    const e = this.entryOf(key);
    for (const d of e.dialing) {
      if (d.seats > 0) {
        d.seats--;
        return d.done;
      }
    }
    const d: PendingDial = { done: Promise.resolve(), seats: this.maxStreams - 1 };
    d.done = this.dialSession(key, target).finally(() => {
      e.dialing.delete(d);
      if (e.sessions.length === 0 && e.dialing.size === 0 && this.entries.get(key) === e) this.entries.delete(key);
    });
    e.dialing.add(d);
    return d.done;
  }

  private entryOf(key: string): KeyEntry {
    let e = this.entries.get(key);
    if (!e) {
      e = { sessions: [], dialing: new Set() };
      this.entries.set(key, e);
    }
    return e;
  }

  private async dialSession(key: string, target: HboneTarget): Promise<void> {
    this.dials++;
    let dialed;
    try {
      const cert = await this.certs.fetchCertificate(target.srcIdentity, 'realtime');
      dialed = await dialHbone(target, cert, this.dial);
    } catch (err) {
      this.dialFailures++;
      this.logger.debug({ key, err: errorMessage(err) }, 'HBONE dial failed');
      throw err;
    }
    const peerMax = dialed.session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    const session = new PooledSession({
      key,
      peerUid: target.peerUid,
      peerIdentity: dialed.peerIdentity,
      h2: dialed.session,
      maxStreams: Math.max(1, Math.min(this.maxStreams, peerMax)),
      idleTimeout: this.idleTimeout,
      keepalive: this.keepalive,
      clock: this.clock,
      logger: this.logger,
      onEvict: this.onEvict,
    });
    this.all.add(session);
    if (this.closing) {
      session.retire('pool-closed');
      return;
    }
    this.entryOf(key).sessions.push(session);
  }

  private readonly onEvict = (s: PooledSession, why: EvictReason): void => {
    const e = this.entries.get(s.key);
    if (e) {
      const i = e.sessions.indexOf(s);
      if (i >= 0) e.sessions.splice(i, 1);
      if (e.sessions.length === 0 && e.dialing.size === 0) this.entries.delete(s.key);
    }
    this.logger.debug({ key: s.key, why }, 'HBONE connection left the pool');
    if (s.h2.destroyed) this.all.delete(s);
    else s.h2.once('close', () => this.all.delete(s));
  };
}

/** The pool key; identities sorted so the same set in another order shares connections. */
export function poolKey(t: HboneTarget): string {
  const ids = [...t.expectedIdentities].sort().join(',');
  return `${t.srcIdentity.toString()}|${ids}|${formatSocketAddr(t.nextHop)}|${t.localAddress ?? ''}|${t.peerUid}`;
}
