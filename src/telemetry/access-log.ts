import type { Logger } from 'pino';
import { REASONS, type Reason } from '../errors';
import type { ConnectionContext, EarlyFailure } from './connection-context';
import { formatSocketAddr } from '../util/socket-addr';

/** Bytes from the local app's point of view (outbound: bytes_sent = client→server). */
export interface AccessBytes {
  readonly sent: number;
  readonly recv: number;
}

/** How a connection ended, for the closing line. `reason` null = clean close. */
export interface AccessOutcome {
  readonly reason: Reason | null;
  readonly error: string | null;
  /** The deciding policy (namespace/name) for DENY outcomes. */
  readonly policy: string | null;
  /** Bytes discarded when the connection was reset (logged as `bytes_discarded` when > 0). */
  readonly discarded?: number;
}

/**
 * The access log: a child logger with scope "access" and ztunnel's field names, so tools
 * built for ztunnel's lines keep working. Beyond ztunnel (whose log says little about why a connection failed): a DEBUG line at
 * open, periodic "connection update" lines for long-lived connections, and `reason` + `hint`
 * on every failure.
 */
export class AccessLog {
  private readonly log: Logger;
  /** This logger's numeric DEBUG and INFO levels, to test `levelVal` (which /logging may change) without a name lookup. */
  private readonly debugVal: number;
  private readonly infoVal: number;

  constructor(logger: Logger) {
    this.log = logger.child({ scope: 'access' });
    this.debugVal = this.log.levels.values['debug'] ?? 20;
    this.infoVal = this.log.levels.values['info'] ?? 30;
  }

  /** The fields every line about this connection carries (built once per connection). */
  static fields(ctx: ConnectionContext): Record<string, string> {
    const f: Record<string, string> = { 'src.addr': formatSocketAddr(ctx.src) };
    const s = ctx.srcWorkload;
    if (s) {
      f['src.workload'] = s.name;
      f['src.namespace'] = s.namespace;
      if (s.clusterId) f['src.cluster'] = s.clusterId;
    }
    if (ctx.mtls && ctx.srcIdentity) f['src.identity'] = ctx.srcIdentity.toString();
    f['dst.addr'] = formatSocketAddr(ctx.dst);
    if (ctx.hboneAddr) f['dst.hbone_addr'] = ctx.hboneAddr;
    if (ctx.dstService) f['dst.service'] = ctx.dstService.hostname;
    const d = ctx.dstWorkload;
    if (d) {
      f['dst.workload'] = d.name;
      f['dst.namespace'] = d.namespace;
      if (d.clusterId) f['dst.cluster'] = d.clusterId;
    }
    if (ctx.mtls && ctx.dstIdentity) f['dst.identity'] = ctx.dstIdentity.toString();
    f['direction'] = ctx.direction;
    return f;
  }

  opened(ctx: ConnectionContext): void {
    if (this.log.levelVal <= this.debugVal) this.log.debug(AccessLog.fields(ctx), 'connection opened');
  }

  update(fields: Record<string, string>, bytes: AccessBytes, durationMs: number): void {
    this.log.info({ ...fields, bytes_sent: bytes.sent, bytes_recv: bytes.recv, duration: `${Math.round(durationMs)}ms` }, 'connection update');
  }

  /**
   * The one closing line: INFO when clean, WARN for policy/drain outcomes, ERROR otherwise.
   * The fields are rendered only when the line's level is enabled: at the usual WARN/ERROR
   * levels a clean close renders nothing (addresses and identities formatted per
   * connection showed up in connection-rate profiles).
   */
  completed(ctx: ConnectionContext, bytes: AccessBytes, durationMs: number, outcome: AccessOutcome): void {
    const r = outcome.reason;
    if (r === null || REASONS[r].flag === '-') {
      if (this.log.levelVal > this.infoVal) return;
      const rec = closingRecord(ctx, bytes, durationMs, outcome);
      if (r !== null) rec['reason'] = r;
      if (outcome.error && r !== null) rec['error'] = outcome.error;
      this.log.info(rec, 'connection complete');
      return;
    }
    const rec = closingRecord(ctx, bytes, durationMs, outcome);
    rec['error'] = outcome.error ?? r;
    rec['reason'] = r;
    rec['hint'] = REASONS[r].hint;
    if (outcome.policy) rec['policy'] = outcome.policy;
    const msg = r === 'DENY_LATE' ? 'connection closed due to policy change' : 'connection complete';
    if (r === 'DENY' || r === 'DENY_LATE' || r === 'DRAINED') this.log.warn(rec, msg);
    else this.log.error(rec, msg);
  }

  /** Early failures (unknown source, self-call, bad SOCKS/TLS/CONNECT): no metrics series, one WARN. */
  failed(early: EarlyFailure, reason: Reason, error: string, extra: Record<string, unknown> = {}): void {
    this.log.warn(
      {
        'src.addr': early.src ? formatSocketAddr(early.src) : undefined,
        'dst.addr': early.dst ? formatSocketAddr(early.dst) : undefined,
        direction: early.direction,
        error,
        reason,
        hint: REASONS[reason].hint,
        ...extra,
      },
      'connection failed',
    );
  }
}

/** The closing line's fields: the connection's, then bytes and duration (and discarded bytes). */
function closingRecord(ctx: ConnectionContext, bytes: AccessBytes, durationMs: number, outcome: AccessOutcome): Record<string, unknown> {
  const rec: Record<string, unknown> = AccessLog.fields(ctx);
  rec['bytes_sent'] = bytes.sent;
  rec['bytes_recv'] = bytes.recv;
  rec['duration'] = `${Math.round(durationMs)}ms`;
  if (outcome.discarded) rec['bytes_discarded'] = outcome.discarded;
  return rec;
}
