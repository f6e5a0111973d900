import { constants as h2c } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { classifyError, type Reason } from '../errors';
import { readBuffersOf, type ReadBuffers } from './splice-readbuf';

export interface SpliceOptions {
  /** Close both sides when no byte moves for this long (IDLE_TIMEOUT, ms); 0/undefined = never. */
  readonly idleTimeout?: number;
  /** Abort from outside (drain deadline, late policy denial); the reason is classifyError(signal.reason). */
  readonly signal?: AbortSignal;
}

export interface SpliceOutcome {
  /** null = both directions reached EOF cleanly. */
  readonly reason: Reason | null;
  /** Bytes a → b and b → a (from the plain TCP leg's socket counters when there is one). */
  readonly aToB: number;
  readonly bToA: number;
  /** The first error seen, for the log (already classified in `reason`). */
  readonly error?: unknown;
  /**
   * Bytes the proxy held for a side when the connection was reset (queued for writing or
   * read but not forwarded yet): discarded, never delivered. 0 for a clean end.
   */
  readonly discarded: number;
}

/**
 * Copies bytes both ways between two duplexes until both directions are done, for every
 * path (TCP↔TCP, TCP↔HBONE stream, stream↔stream). Resolves once both sides are closed.
 *
 * Semantics:
 * - the directions are independent: EOF on one side becomes end() on the other (TCP FIN ↔
 *   HTTP/2 END_STREAM) and the other direction keeps flowing. TCP sockets MUST be created
 *   with `allowHalfOpen: true` or Node closes our write side on the peer's FIN;
 * - only a real END_STREAM is a FIN. Every other end of an HTTP/2 leg is abnormal and
 *   becomes a TCP RST (resetAndDestroy) on the other side: a RST_STREAM from the peer
 *   (RESET, whatever its code), or the loss of the session under the stream (TUNNEL_LOST:
 *   PING timeout, the peer force-closing at its drain deadline, the TCP connection closing
 *   or resetting under the session). Node reports NO_ERROR/CANCEL for both a clean close and
 *   a lost session, so codes never decide this; see abnormalEnd();
 * - a TCP RST becomes a reset of the other leg (RST_STREAM without END_STREAM, or RST);
 *   every abort from outside (idle timeout, drain deadline, late denial) resets both legs;
 * - a reset leg loses what the proxy still held for it, whatever its buffer state (an app
 *   that stopped reading cannot keep a dead tunnel's socket open); those bytes are counted
 *   in `discarded`;
 * - a socket is destroyed only after we read its EOF and flushed our writes, so a
 *   graceful close is never turned into a kernel RST by unread data;
 * - backpressure: write() false pauses the source until 'drain'. Handlers are bound once
 *   per splice; nothing is allocated or logged per chunk.
 */
export function splice(a: Duplex, b: Duplex, opts: SpliceOptions = {}): Promise<SpliceOutcome> {
  return new Promise((resolve) => new Splice(a, b, opts, resolve).start());
}

/** One direction. `done` once EOF was delivered downstream (or the direction was abandoned). */
class Pump {
  bytes = 0;
  srcEnded = false;
  done = false;
  /**
   * The HTTP/2 session under an HBONE source, taken while the stream is alive: Node drops
   * the stream's reference to it when the stream closes, which is when we need to ask.
   */
  readonly srcSession: H2SessionLike | null;
  /** A socket reading into reused buffers: its reads go straight to `dst` (see ReadBuffers). */
  private readonly reader: ReadBuffers | null;
  constructor(
    readonly src: Duplex,
    readonly dst: Duplex,
    private readonly owner: Splice,
  ) {
    this.srcSession = isH2Stream(src) ? (src.session ?? null) : null;
    this.reader = readBuffersOf(src);
  }

  start(): void {
    // on(), not once(): these events fire at most once each, and once() allocates a wrapper
    // and its state per listener, kept for the whole life of an idle connection.
    this.src.on('data', this.onData);
    this.src.on('end', this.onEnd);
    this.dst.on('drain', this.onDrain);
    // Bytes the socket already holds (read before the hand-off, unshifted) still come as
    // 'data', on the next tick after resume(), before the reader's next direct read.
    this.reader?.attach(this.dst);
    // A source explicitly paused before the hand-off (e.g. a SOCKS5 reader) stays paused
    // when 'data' listeners are added; the splice owns the flow from here.
    this.src.resume();
  }

  stop(): void {
    this.reader?.halt();
    this.src.removeListener('data', this.onData);
    this.src.removeListener('end', this.onEnd);
    this.dst.removeListener('drain', this.onDrain);
    this.dst.removeListener('finish', this.onFinish);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.bytes += chunk.length;
    if (!this.dst.write(chunk)) this.src.pause();
  };

  private readonly onDrain = (): void => {
    if (this.reader !== null) this.reader.drained();
    else this.src.resume();
  };

  readonly onEnd = (): void => {
    if (this.srcEnded) return;
    // Node also ends an HTTP/2 stream's readable side when a RST_STREAM arrives or the
    // session under it is destroyed; only an end from a real END_STREAM may become a FIN.
    if (this.srcSession !== null) {
      const abnormal = abnormalEnd(this.src as H2StreamLike, this.srcSession);
      if (abnormal !== null) {
        this.owner.abnormalFrom(this.src, abnormal);
        return;
      }
    }
    this.srcEnded = true;
    if (this.dst.destroyed || this.dst.writableFinished) {
      this.onFinish();
      return;
    }
    this.dst.on('finish', this.onFinish);
    this.dst.end();
  };

  private readonly onFinish = (): void => {
    if (this.done) return;
    this.done = true;
    this.owner.check();
  };

  /** The destination stream closed after its clean END_STREAM: nothing more can be delivered to it. */
  abandon(): void {
    if (this.done) return;
    this.done = true;
    this.reader?.halt();
    this.src.pause();
    this.owner.check();
  }
}

type Resolve = (o: SpliceOutcome) => void;

class Splice {
  private readonly ab: Pump;
  private readonly ba: Pump;
  private reason: Reason | null = null;
  private error: unknown = undefined;
  private discarded = 0;
  private finishing = false;
  private aClosed = false;
  private bClosed = false;
  private resolved = false;
  private timed: Duplex | null = null;

  constructor(
    private readonly a: Duplex,
    private readonly b: Duplex,
    private readonly opts: SpliceOptions,
    private readonly resolve: Resolve,
  ) {
    this.ab = new Pump(a, b, this);
    this.ba = new Pump(b, a, this);
  }

  start(): void {
    this.a.on('error', this.onErrorA);
    this.b.on('error', this.onErrorB);
    this.a.on('close', this.onCloseA);
    this.b.on('close', this.onCloseB);
    this.aClosed = this.a.destroyed && this.a.closed;
    this.bClosed = this.b.destroyed && this.b.closed;
    const idle = this.opts.idleTimeout ?? 0;
    if (idle > 0) {
      // Node refreshes a socket/stream timeout on every read and write itself, so idle
      // tracking costs nothing per chunk. Prefer a TCP leg.
      const leg = plainTcp(this.a) ?? plainTcp(this.b) ?? this.a;
      const settable = leg as Duplex & { setTimeout?: (ms: number) => unknown };
      if (typeof settable.setTimeout === 'function') {
        settable.setTimeout(idle);
        leg.on('timeout', this.onIdle);
        this.timed = leg;
      }
    }
    if (this.opts.signal) {
      if (this.opts.signal.aborted) {
        this.onAbort();
        return;
      }
      this.opts.signal.addEventListener('abort', this.onAbort, { once: true });
    }
    this.ab.start();
    this.ba.start();
    if (this.a.destroyed || this.b.destroyed) {
      this.fail(null, 'RESET', new Error('a side was already closed when the splice started'));
      return;
    }
    // A FIN that arrived before the splice (e.g. while the CONNECT was in flight) has
    // already emitted 'end' to nobody; carry it now.
    if (this.a.readableEnded) this.ab.onEnd();
    if (this.b.readableEnded) this.ba.onEnd();
  }

  /** Called by a pump when it finished: when both are done, close both sides gracefully. */
  check(): void {
    if (this.finishing || !this.ab.done || !this.ba.done) return;
    this.finishing = true;
    closeGracefully(this.a);
    closeGracefully(this.b);
    this.maybeResolve();
  }

  /** Every abnormal end resets both legs (except the one it came from): never a FIN. */
  private fail(from: Duplex | null, reason: Reason, err: unknown): void {
    if (this.finishing) return;
    this.finishing = true;
    this.reason = reason;
    this.error = err;
    this.ab.stop();
    this.ba.stop();
    this.discarded = backlog(this.a) + backlog(this.b);
    if (from !== this.a) resetLeg(this.a);
    if (from !== this.b) resetLeg(this.b);
    this.maybeResolve();
  }

  /** An HTTP/2 leg ended without END_STREAM: reset by the peer, or its session is gone. */
  abnormalFrom(leg: Duplex, reason: 'RESET' | 'TUNNEL_LOST'): void {
    const code = String((leg as H2StreamLike).rstCode);
    this.fail(leg, reason, new Error(reason === 'TUNNEL_LOST' ? `the HBONE connection under the stream was lost (code ${code})` : `stream reset by peer (code ${code})`));
  }

  private onError(leg: Duplex, err: Error): void {
    if (this.finishing) return;
    const pump = leg === this.a ? this.ab : this.ba;
    if (pump.srcSession !== null && sessionGone(pump.srcSession)) this.fail(leg, 'TUNNEL_LOST', err);
    else this.fail(leg, classifyError(err, 'copy'), err);
  }

  private readonly onErrorA = (err: Error): void => this.onError(this.a, err);
  private readonly onErrorB = (err: Error): void => this.onError(this.b, err);

  private onClose(leg: Duplex): void {
    const [asSrc, asDst] = leg === this.a ? [this.ab, this.ba] : [this.ba, this.ab];
    // A leg closes by itself once we read its EOF and our writes to it finished
    // (autoDestroy); that is clean even if the other leg has not flushed yet.
    if (!this.finishing && !(asSrc.srcEnded && asDst.done)) {
      if (asSrc.srcSession !== null && asSrc.srcEnded && !sessionGone(asSrc.srcSession) && ((leg as H2StreamLike).rstCode ?? 0) === h2c.NGHTTP2_NO_ERROR) {
        // The peer sent its END_STREAM, then closed the stream without an error (RST_STREAM
        // NO_ERROR after a complete response, RFC 9113 §8.1): nothing more can be delivered
        // to it. Any other code after its END_STREAM is still a reset of our direction.
        asDst.abandon();
      } else if (asSrc.srcSession !== null) {
        this.abnormalFrom(leg, abnormalEnd(leg as H2StreamLike, asSrc.srcSession) ?? 'RESET');
      } else {
        this.fail(leg, 'RESET', new Error('a side closed before both directions finished'));
      }
    }
    this.maybeResolve();
  }

  private readonly onCloseA = (): void => {
    this.aClosed = true;
    this.onClose(this.a);
  };
  private readonly onCloseB = (): void => {
    this.bClosed = true;
    this.onClose(this.b);
  };

  private readonly onIdle = (): void => this.fail(null, 'IDLE_TIMEOUT', undefined);

  private readonly onAbort = (): void => {
    const why = this.opts.signal?.reason;
    this.fail(null, why === undefined ? 'DRAINED' : classifyError(why), why);
  };

  private maybeResolve(): void {
    if (this.resolved || !this.aClosed || !this.bClosed) return;
    this.resolved = true;
    this.ab.stop();
    this.ba.stop();
    this.a.removeListener('close', this.onCloseA);
    this.b.removeListener('close', this.onCloseB);
    this.timed?.removeListener('timeout', this.onIdle);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const tcp = plainTcp(this.a) ? { leg: this.a as Socket, isA: true } : plainTcp(this.b) ? { leg: this.b as Socket, isA: false } : null;
    let aToB = this.ab.bytes;
    let bToA = this.ba.bytes;
    if (tcp) {
      aToB = tcp.isA ? tcp.leg.bytesRead : tcp.leg.bytesWritten;
      bToA = tcp.isA ? tcp.leg.bytesWritten : tcp.leg.bytesRead;
    }
    const out: SpliceOutcome = this.error === undefined ? { reason: this.reason, aToB, bToA, discarded: this.discarded } : { reason: this.reason, aToB, bToA, discarded: this.discarded, error: this.error };
    this.resolve(out);
  }
}

interface H2SessionLike {
  readonly destroyed: boolean;
  readonly socket?: { readonly destroyed?: boolean };
}

interface H2StreamLike extends Duplex {
  readonly rstCode?: number;
  readonly closed: boolean;
  /** Set by Node when the stream closed (RST_STREAM, session loss) while our write side was open. */
  readonly aborted: boolean;
  close(code?: number): void;
  readonly session?: H2SessionLike;
}

function isH2Stream(d: Duplex): d is H2StreamLike {
  return 'rstCode' in d && 'session' in d && typeof (d as H2StreamLike).close === 'function';
}

/**
 * Why an HTTP/2 stream's end is not a clean END_STREAM, or null if it is. Node pushes an
 * end of stream for a RST_STREAM(NO_ERROR) and when the session under it is destroyed,
 * with rstCode NO_ERROR or CANCEL in both cases, exactly as for a clean close. What tells
 * them apart: the session is gone (TUNNEL_LOST), or the stream was aborted, i.e. closed
 * while our side still had it open, or carries an error code (RESET).
 */
function abnormalEnd(s: H2StreamLike, session: H2SessionLike): 'RESET' | 'TUNNEL_LOST' | null {
  if (sessionGone(session)) return 'TUNNEL_LOST';
  if (s.aborted) return 'RESET';
  const code = s.rstCode;
  return code === undefined || code === h2c.NGHTTP2_NO_ERROR ? null : 'RESET';
}

/** The session was destroyed or its socket closed (Node unbinds the socket on destroy; reading it then throws). */
function sessionGone(session: H2SessionLike): boolean {
  if (session.destroyed) return true;
  try {
    return session.socket?.destroyed === true;
  } catch {
    return true;
  }
}

/** What the proxy holds for a leg: queued writes plus reads not forwarded yet. */
function backlog(d: Duplex): number {
  return (d.writableLength ?? 0) + (d.readableLength ?? 0);
}

/** A TCP socket whose counters are payload bytes (not TLS records). */
function plainTcp(d: Duplex): Socket | null {
  return d instanceof Socket && !(d instanceof TLSSocket) ? d : null;
}

/**
 * Carries a reset: RST on TCP, RST_STREAM on HTTP/2. On a stream whose write side is
 * still open, Node's close(code) first ends the writable (an END_STREAM frame goes out
 * before the RST_STREAM; verified on Node 20), and the peer would forward that as a FIN.
 * destroy(err) skips the END_STREAM and sends RST_STREAM(INTERNAL_ERROR) instead of
 * RFC 9113 §8.5's CONNECT_ERROR; either code is a reset to every receiver. Once our
 * END_STREAM is already out, close(CONNECT_ERROR) adds nothing and is used.
 */
function resetLeg(d: Duplex): void {
  if (d.destroyed) return;
  if (isH2Stream(d)) {
    if (d.closed) return;
    if (d.writableEnded) d.close(h2c.NGHTTP2_CONNECT_ERROR);
    else d.destroy(new Error('TCP connection reset; resetting the HBONE stream'));
    return;
  }
  const tcp = plainTcp(d);
  if (tcp) {
    try {
      tcp.resetAndDestroy();
      return;
    } catch {
      // not a bare TCP handle (e.g. still connecting); fall through to destroy
    }
  }
  d.destroy();
}

/**
 * Both directions are done: nothing unread remains, so destroying cannot cause a kernel RST.
 * An HTTP/2 stream whose END_STREAM went both ways closes by itself once our last frame is
 * flushed; close(NO_ERROR) there would add an RST_STREAM per connection (5% of the
 * receiving proxy's time in connection-rate profiles). Only a stream that is somehow not
 * ended both ways is closed explicitly.
 */
function closeGracefully(d: Duplex): void {
  if (d.destroyed) return;
  if (isH2Stream(d)) {
    if (!d.closed && !(d.readableEnded && d.writableEnded)) d.close(h2c.NGHTTP2_NO_ERROR);
    return;
  }
  d.destroy();
}
