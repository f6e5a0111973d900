import type { Socket } from 'node:net';
import { REASONS, type Reason } from '../errors';
import { AccessLog, type AccessBytes } from './access-log';
import type { TrafficSeries } from './tcp-metrics';
import type { ConnectionContext } from './connection-context';
import type { TrackedConnection } from './connection-tracker';
import type { Telemetry } from './telemetry';

/** How the owner saw the connection end; `reason` null = clean close. */
export interface RecordOutcome {
  readonly reason: Reason | null;
  readonly error?: string | null;
  /** namespace/name of the deciding policy (DENY). */
  readonly policy?: string | null;
  /** Bytes the proxy held for a side it reset, never delivered (access-log `bytes_discarded`). */
  readonly discarded?: number;
}

/**
 * Which way the counted socket faces: `client` = the socket IS the client (outbound: the
 * app's accepted socket; bytesRead = client→server); `server` = the socket goes TO the
 * server app (inbound: our dial to the pod; bytesWritten = client→server).
 */
export type ByteSourceRole = 'client' | 'server';

/** A TCP socket, or a tunnel stream that keeps the same counters (the waypoint's). */
export type ByteCounters = Pick<Socket, 'bytesRead' | 'bytesWritten'>;

/**
 * One proxied connection's telemetry, opened once the context is known and recorded
 * exactly once (ztunnel's ConnectionResult). Nothing looks labels up per chunk: byte
 * counters move only at close and from the shared flusher. Bytes come from the plain
 * TCP leg's socket counters: at close, and from the tracker's single shared flusher for
 * long-lived connections, so the metrics equal the bytes that really moved.
 */
export class ConnectionResult implements TrackedConnection {
  readonly startedAt: number;
  /** The connection's metric series (shared with every connection of the same labels). */
  private readonly series: TrafficSeries;
  private socket: ByteCounters | null = null;
  private role: ByteSourceRole = 'client';
  /** Socket bytes that were protocol, not app data (the SOCKS5 handshake). */
  private baseRead = 0;
  private baseWritten = 0;
  /** Bytes already added to the counters (the flusher adds deltas). */
  private flushedC2s = 0;
  private flushedS2c = 0;
  private recorded = false;
  /** Set by terminate(): the reason wins over whatever the copy loop then reports. */
  private forced: RecordOutcome | null = null;
  private abort: ((reason: Reason) => void) | null = null;
  /** For inbound connections: re-runs authorization after a policy change. */
  recheck: (() => { allowed: boolean; policy: string | null; why: string }) | null = null;
  /** When the last "connection update" line was written. */
  lastUpdateAt: number;

  constructor(
    private readonly telemetry: Telemetry,
    readonly ctx: ConnectionContext,
  ) {
    this.startedAt = telemetry.clock.now();
    this.lastUpdateAt = this.startedAt;
    this.series = telemetry.metrics.open(ctx);
    telemetry.access.opened(ctx);
    telemetry.tracker.add(this);
  }

  /**
   * The access-log fields, built when a line is written and not kept: an idle connection
   * holds only its (immutable) context, not ~1 KB of rendered addresses and identities.
   */
  get fields(): Record<string, string> {
    return AccessLog.fields(this.ctx);
  }

  get isRecorded(): boolean {
    return this.recorded;
  }

  /** The reason terminate() forced, or null (owners check it after an await). */
  get terminatedReason(): Reason | null {
    return this.forced?.reason ?? null;
  }

  /**
   * The socket whose counters are the connection's bytes (the plain TCP leg). `base` is what
   * the counters held before app data started (the SOCKS5 handshake), so it is not counted.
   */
  setByteSource(socket: ByteCounters, role: ByteSourceRole, base: { read: number; written: number } = { read: 0, written: 0 }): void {
    this.socket = socket;
    this.role = role;
    this.baseRead = base.read;
    this.baseWritten = base.written;
  }

  /** Registers how the tracker can force this connection closed (drain, late deny). */
  onAbort(fn: (reason: Reason) => void): void {
    this.abort = fn;
  }

  /** Current bytes: client→server and server→client, from the socket counters. */
  bytes(): { c2s: number; s2c: number } {
    const s = this.socket;
    if (!s) return { c2s: this.flushedC2s, s2c: this.flushedS2c };
    const read = Math.max(0, (s.bytesRead ?? 0) - this.baseRead);
    const written = Math.max(0, (s.bytesWritten ?? 0) - this.baseWritten);
    return this.role === 'client' ? { c2s: read, s2c: written } : { c2s: written, s2c: read };
  }

  /** Adds the bytes moved since the last flush to the counters (shared flusher + close). */
  flush(): void {
    if (this.recorded) return;
    const b = this.bytes();
    const c2s = Math.max(0, b.c2s - this.flushedC2s);
    const s2c = Math.max(0, b.s2c - this.flushedS2c);
    if (c2s === 0 && s2c === 0) return;
    this.telemetry.metrics.addBytes(this.ctx, this.series, c2s, s2c);
    this.flushedC2s += c2s;
    this.flushedS2c += s2c;
  }

  /** Access-log bytes from the local app's point of view. */
  appBytes(): AccessBytes {
    const b = this.bytes();
    return this.ctx.direction === 'outbound' ? { sent: b.c2s, recv: b.s2c } : { sent: b.s2c, recv: b.c2s };
  }

  /** Writes a "connection update" line (long-lived connections, from the shared flusher). */
  logUpdate(now: number): void {
    this.lastUpdateAt = now;
    this.telemetry.access.update(this.fields, this.appBytes(), now - this.startedAt);
  }

  /**
   * Forces the connection closed with a reason (DRAINED, DENY_LATE): both legs are aborted
   * and the connection is recorded now with that reason, so drain and late rejection never
   * depend on the copy loop noticing. The owner's own record() afterwards is the expected
   * no-op (not a duplicate).
   */
  terminate(reason: Reason, error: string, policy: string | null = null): void {
    if (this.recorded || this.forced) return;
    this.forced = { reason, error, policy };
    this.abort?.(reason);
    this.record(this.forced);
  }

  /** Records the outcome exactly once: metrics, socket gauge and the closing log line. Returns false if already recorded. */
  record(outcome: RecordOutcome): boolean {
    if (this.recorded) {
      if (this.forced === null) this.telemetry.noteDuplicateRecord(this);
      return false;
    }
    this.flush();
    this.recorded = true;
    const o = this.forced ?? outcome;
    const reason = o.reason;
    const flag = reason ? REASONS[reason].flag : '-';
    this.telemetry.metrics.close(this.ctx, this.series, flag, reason);
    this.telemetry.tracker.remove(this);
    this.telemetry.access.completed(this.ctx, this.appBytes(), this.telemetry.clock.now() - this.startedAt, {
      reason,
      error: o.error ?? null,
      policy: o.policy ?? null,
      discarded: o.discarded ?? 0,
    });
    return true;
  }
}
