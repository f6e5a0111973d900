import { constants as h2c } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { classifyError, type Reason } from '../errors';

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
}

/**
 * Copies bytes both ways between two duplexes until both directions are done, for every
 * path (TCP↔TCP, TCP↔HBONE stream, stream↔stream). Resolves once both sides are closed.
 *
 * Semantics (as ztunnel's copy loop):
 * - the directions are independent: EOF on one side becomes end() on the other (TCP FIN ↔
 *   HTTP/2 END_STREAM) and the other direction keeps flowing. TCP sockets MUST be created
 *   with `allowHalfOpen: true` or Node closes our write side on the peer's FIN;
 * - a reset is carried as a reset: TCP RST → RST_STREAM with an error code (see
 *   resetLeg) or resetAndDestroy() on a TCP leg; RST_STREAM with an error code → TCP RST. An
 *   RST_STREAM(NO_ERROR|CANCEL) is a clean EOF, as in ztunnel;
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
  constructor(
    readonly src: Duplex,
    readonly dst: Duplex,
    private readonly owner: Splice,
  ) {}

  start(): void {
    this.src.on('data', this.onData);
    this.src.once('end', this.onEnd);
    this.dst.on('drain', this.onDrain);
    // A source explicitly paused before the hand-off (e.g. a SOCKS5 reader) stays paused
    // when 'data' listeners are added; the splice owns the flow from here.
    this.src.resume();
  }

  stop(): void {
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
    this.src.resume();
  };

  readonly onEnd = (): void => {
    if (this.srcEnded) return;
    // Node ends an HTTP/2 stream's readable side on RST_STREAM too (push(null) before
    // 'error'); an error code there is a reset, which must not become a FIN downstream.
    if (isH2Stream(this.src) && !cleanRst(this.src)) {
      this.owner.resetFrom(this.src);
      return;
    }
    this.srcEnded = true;
    if (this.dst.destroyed || this.dst.writableFinished) {
      this.onFinish();
      return;
    }
    this.dst.once('finish', this.onFinish);
    this.dst.end();
  };

  private readonly onFinish = (): void => {
    if (this.done) return;
    this.done = true;
    this.owner.check();
  };

  /** The destination went away cleanly (peer CANCEL/NO_ERROR): nothing more can be delivered. */
  abandon(): void {
    if (this.done) return;
    this.done = true;
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
    this.a.once('close', this.onCloseA);
    this.b.once('close', this.onCloseB);
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

  private fail(from: Duplex | null, reason: Reason, err: unknown): void {
    if (this.finishing) return;
    this.finishing = true;
    this.reason = reason;
    this.error = err;
    this.ab.stop();
    this.ba.stop();
    if (reason === 'RESET') {
      if (from !== this.a) resetLeg(this.a);
      if (from !== this.b) resetLeg(this.b);
    } else {
      abortLeg(this.a);
      abortLeg(this.b);
    }
    this.maybeResolve();
  }

  /** A pump saw its HTTP/2 source end by RST_STREAM with an error code. */
  resetFrom(leg: Duplex): void {
    this.fail(leg, 'RESET', new Error(`stream reset by peer (code ${String((leg as H2StreamLike).rstCode)})`));
  }

  private onError(leg: Duplex, err: Error): void {
    if (this.finishing) return;
    this.fail(leg, classifyError(err, 'copy'), err);
  }

  private readonly onErrorA = (err: Error): void => this.onError(this.a, err);
  private readonly onErrorB = (err: Error): void => this.onError(this.b, err);

  private onClose(leg: Duplex): void {
    const [asSrc, asDst] = leg === this.a ? [this.ab, this.ba] : [this.ba, this.ab];
    // A leg closes by itself once we read its EOF and our writes to it finished
    // (autoDestroy); that is clean even if the other leg has not flushed yet.
    if (!this.finishing && !(asSrc.srcEnded && asDst.done)) {
      if (isH2Stream(leg) && cleanRst(leg)) {
        // The peer ended the stream without an error code: EOF for what it sent us,
        // and nothing more can be delivered to it.
        if (!asSrc.srcEnded) asSrc.onEnd();
        asDst.abandon();
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
    this.timed?.removeListener('timeout', this.onIdle);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const tcp = plainTcp(this.a) ? { leg: this.a as Socket, isA: true } : plainTcp(this.b) ? { leg: this.b as Socket, isA: false } : null;
    let aToB = this.ab.bytes;
    let bToA = this.ba.bytes;
    if (tcp) {
      aToB = tcp.isA ? tcp.leg.bytesRead : tcp.leg.bytesWritten;
      bToA = tcp.isA ? tcp.leg.bytesWritten : tcp.leg.bytesRead;
    }
    const out: SpliceOutcome = this.error === undefined ? { reason: this.reason, aToB, bToA } : { reason: this.reason, aToB, bToA, error: this.error };
    this.resolve(out);
  }
}

interface H2StreamLike extends Duplex {
  readonly rstCode?: number;
  readonly closed: boolean;
  close(code?: number): void;
  readonly session?: unknown;
}

function isH2Stream(d: Duplex): d is H2StreamLike {
  return 'rstCode' in d && 'session' in d && typeof (d as H2StreamLike).close === 'function';
}

function cleanRst(s: H2StreamLike): boolean {
  const code = s.rstCode ?? h2c.NGHTTP2_NO_ERROR;
  return code === h2c.NGHTTP2_NO_ERROR || code === h2c.NGHTTP2_CANCEL;
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

/** Ends a leg without a reset code (idle timeout, drain): FIN on TCP, RST_STREAM(CANCEL) on HTTP/2. */
function abortLeg(d: Duplex): void {
  if (d.destroyed) return;
  if (isH2Stream(d)) {
    if (!d.closed) d.close(h2c.NGHTTP2_CANCEL);
    return;
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
