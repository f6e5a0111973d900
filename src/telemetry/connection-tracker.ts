import type { Logger } from 'pino';
import type { Reason } from '../errors';
import type { Clock } from '../util/clock';
import { formatSocketAddr } from '../util/socket-addr';
import type { ConnectionContext } from './connection-context';

/**
 * What the tracker needs of a live connection (ConnectionResult implements it). Declared
 * here so the tracker does not depend on the record that registers with it.
 */
export interface TrackedConnection {
  readonly ctx: ConnectionContext;
  readonly fields: Record<string, string>;
  readonly startedAt: number;
  readonly lastUpdateAt: number;
  /** For inbound connections: re-runs authorization after a policy change. */
  readonly recheck: (() => { allowed: boolean; policy: string | null; why: string }) | null;
  bytes(): { c2s: number; s2c: number };
  flush(): void;
  logUpdate(now: number): void;
  terminate(reason: Reason, error: string, policy?: string | null): void;
}

export interface TrackerOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** ACCESS_LOG_UPDATE_INTERVAL (ms); 0 = no update lines. */
  readonly updateIntervalMs: number;
  readonly flushIntervalMs: number;
}

/** One row of /debug/connections. */
export interface ConnectionRow {
  direction: string;
  src: string;
  dst: string;
  hbone: string | null;
  srcWorkload: string | null;
  dstWorkload: string | null;
  dstService: string | null;
  srcIdentity: string | null;
  dstIdentity: string | null;
  mtls: boolean;
  bytesClientToServer: number;
  bytesServerToClient: number;
  ageMs: number;
}

/**
 * Every live (opened, not yet recorded) connection. It drives three things:
 * - ONE shared interval that flushes bytes of long-lived connections into the counters and
 *   writes "connection update" lines (no per-connection timers);
 * - late rejection: after a policy change, inbound connections re-run authorization and the
 *   now-denied ones are closed with DENY_LATE (ztunnel's ConnectionManager);
 * - drain: at the deadline every remaining connection is terminated with DRAINED.
 */
export class ConnectionTracker {
  private readonly live = new Set<TrackedConnection>();
  private timer: NodeJS.Timeout | null = null;
  /** Resolved when the last live connection is recorded (drain waits on it). */
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: TrackerOptions) {}

  get size(): number {
    return this.live.size;
  }

  add(r: TrackedConnection): void {
    this.live.add(r);
    if (!this.timer) {
      const every = this.opts.updateIntervalMs > 0 ? Math.min(this.opts.flushIntervalMs, this.opts.updateIntervalMs) : this.opts.flushIntervalMs;
      this.timer = setInterval(() => this.tick(), Math.max(50, every));
      this.timer.unref();
    }
  }

  remove(r: TrackedConnection): void {
    this.live.delete(r);
    if (this.live.size !== 0) return;
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const fn of w) fn();
  }

  /** Resolves once no connection is live (now, or when the last one is recorded). */
  idle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** The shared flusher: bytes into counters, update lines for connections older than the interval. */
  tick(): void {
    const now = this.opts.clock.now();
    const every = this.opts.updateIntervalMs;
    for (const r of this.live) {
      r.flush();
      if (every > 0 && now - r.lastUpdateAt >= every) r.logUpdate(now);
    }
  }

  /**
   * Re-authorizes the tracked inbound connections `affected` selects (after a policy change:
   * only those a changed policy can re-decide) and closes those now denied (reason DENY_LATE).
   */
  recheckPolicies(affected: (ctx: ConnectionContext) => boolean): { rechecked: number; closed: number } {
    let rechecked = 0;
    let closed = 0;
    for (const r of [...this.live]) {
      if (!r.recheck || !affected(r.ctx)) continue;
      rechecked++;
      let d: { allowed: boolean; policy: string | null; why: string };
      try {
        d = r.recheck();
      } catch (err) {
        this.opts.logger.error({ err, ...r.fields }, 'late authorization check failed; closing the connection');
        d = { allowed: false, policy: null, why: 'authorization check failed' };
      }
      if (d.allowed) continue;
      closed++;
      r.terminate('DENY_LATE', `connection closed due to policy change: ${d.why}`, d.policy);
    }
    return { rechecked, closed };
  }

  /** Force-closes everything still open (drain deadline) with the reason given. */
  terminateAll(reason: Reason, error: string): number {
    const all = [...this.live];
    for (const r of all) r.terminate(reason, error);
    return all.length;
  }

  /** Live rows for /debug/connections, bytes read from the socket counters now. */
  rows(): ConnectionRow[] {
    const now = this.opts.clock.now();
    return [...this.live].map((r) => {
      const c = r.ctx;
      const b = r.bytes();
      return {
        direction: c.direction,
        src: formatSocketAddr(c.src),
        dst: formatSocketAddr(c.dst),
        hbone: c.hboneAddr,
        srcWorkload: c.srcWorkload ? `${c.srcWorkload.namespace}/${c.srcWorkload.name}` : null,
        dstWorkload: c.dstWorkload ? `${c.dstWorkload.namespace}/${c.dstWorkload.name}` : null,
        dstService: c.dstService ? `${c.dstService.namespace}/${c.dstService.hostname}` : null,
        srcIdentity: c.srcIdentity?.toString() ?? null,
        dstIdentity: c.dstIdentity?.toString() ?? null,
        mtls: c.mtls,
        bytesClientToServer: b.c2s,
        bytesServerToClient: b.s2c,
        ageMs: now - r.startedAt,
      };
    });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
