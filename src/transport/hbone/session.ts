import type { ClientHttp2Session } from 'node:http2';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors';
import type { SpiffeId } from '../../identity/spiffe';
import type { Clock, TimerHandle } from '../../util/clock';
import { Keepalive } from './keepalive';
import type { KeepaliveOptions } from './options';

/** Why a session left the pool (for logs and dump). */
export type EvictReason = 'goaway' | 'closed' | 'error' | 'idle' | 'keepalive' | 'peer-evicted' | 'pool-closed';

export interface PooledSessionInit {
  readonly key: string;
  readonly peerUid: string;
  readonly peerIdentity: SpiffeId;
  readonly h2: ClientHttp2Session;
  /** min(POOL_MAX_STREAMS_PER_CONNECTION, peer SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxStreams: number;
  readonly idleTimeout: number;
  readonly keepalive: KeepaliveOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called exactly once when the session must no longer be handed out. */
  readonly onEvict: (s: PooledSession, why: EvictReason) => void;
}

/**
 * One pooled HBONE connection (TLS + HTTP/2 client session).
 *
 * Invariants:
 * - `activeStreams` counts reservations: incremented by `reserve()` at checkout (before
 *   the CONNECT is sent, so concurrent callers never overshoot `maxStreams`) and
 *   decremented once per reservation by `release()`.
 * - once `evicted` is set the session is never handed out again; streams already open
 *   keep running (GOAWAY semantics) and the connection closes when they finish.
 */
export class PooledSession {
  readonly key: string;
  readonly peerUid: string;
  readonly peerIdentity: SpiffeId;
  readonly h2: ClientHttp2Session;
  readonly maxStreams: number;
  readonly createdAt: number;
  activeStreams = 0;
  lastCheckout: number;
  /** Set when the session left the pool; null while it can still be handed out. */
  evicted: EvictReason | null = null;
  private idleTimer: TimerHandle | null = null;
  private readonly keepalive: Keepalive;
  private readonly init: PooledSessionInit;

  constructor(init: PooledSessionInit) {
    this.init = init;
    this.key = init.key;
    this.peerUid = init.peerUid;
    this.peerIdentity = init.peerIdentity;
    this.h2 = init.h2;
    this.maxStreams = init.maxStreams;
    this.createdAt = this.lastCheckout = init.clock.now();
    this.h2.on('goaway', this.onGoaway);
    this.h2.on('error', this.onError);
    this.h2.once('close', this.onClose);
    this.keepalive = new Keepalive(this.h2, init.clock, init.keepalive, this.onKeepaliveDead);
    this.armIdle(init.idleTimeout);
  }

  /** Can take one more stream right now. */
  available(): boolean {
    return this.evicted === null && !this.h2.closed && !this.h2.destroyed && this.activeStreams < this.maxStreams;
  }

  reserve(): void {
    this.activeStreams++;
    this.lastCheckout = this.init.clock.now();
  }

  /** Bound once; passed to each stream's 'close' (no closure per stream). */
  readonly release = (): void => {
    if (this.activeStreams > 0) this.activeStreams--;
  };

  /** Leaves the pool and closes gracefully: GOAWAY, open streams finish, then the socket closes. */
  retire(why: EvictReason): void {
    this.evict(why);
    if (!this.h2.closed && !this.h2.destroyed) this.h2.close();
  }

  /** Resolves when the connection is fully closed. */
  closed(): Promise<void> {
    if (this.h2.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.h2.once('close', () => resolve()));
  }

  destroy(): void {
    this.evict('pool-closed');
    this.h2.destroy();
  }

  dump(): Record<string, unknown> {
    const now = this.init.clock.now();
    return {
      peerIdentity: this.peerIdentity.toString(),
      peerUid: this.peerUid,
      activeStreams: this.activeStreams,
      maxStreams: this.maxStreams,
      ageMs: now - this.createdAt,
      idleMs: now - this.lastCheckout,
      evicted: this.evicted,
    };
  }

  private evict(why: EvictReason): void {
    if (this.evicted !== null) return;
    this.evicted = why;
    if (this.idleTimer) this.init.clock.clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.init.onEvict(this, why);
  }

  /** Idle = not checked out for `idleTimeout` (ztunnel's POOL_UNUSED_RELEASE_TIMEOUT), active streams or not. */
  private armIdle(ms: number): void {
    this.idleTimer = this.init.clock.setTimeout(this.onIdleTimer, ms);
    this.idleTimer.unref?.();
  }

  private readonly onIdleTimer = (): void => {
    this.idleTimer = null;
    if (this.evicted !== null) return;
    const unused = this.init.clock.now() - this.lastCheckout;
    if (unused >= this.init.idleTimeout) this.retire('idle');
    else this.armIdle(this.init.idleTimeout - unused);
  };

  private readonly onGoaway = (code: number): void => {
    this.init.logger.debug({ key: this.key, code }, 'pooled HBONE connection received GOAWAY');
    this.evict('goaway');
  };

  private readonly onError = (err: Error): void => {
    this.init.logger.debug({ key: this.key, err: errorMessage(err) }, 'pooled HBONE connection failed');
    this.evict('error');
  };

  private readonly onClose = (): void => {
    this.keepalive.stop();
    this.evict('closed');
  };

  private readonly onKeepaliveDead = (why: string): void => {
    this.init.logger.warn({ key: this.key, peerIdentity: this.peerIdentity.toString(), reason: 'NETWORK_POLICY' }, `pooled HBONE connection dropped: ${why}`);
    this.evict('keepalive');
    this.h2.destroy();
  };
}
