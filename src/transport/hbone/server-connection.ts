import type { Reason } from '../../errors';
import { constants, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors';
import type { SpiffeId } from '../../identity/spiffe';
import type { Clock, TimerHandle } from '../../util/clock';
import { formatSocketAddr, type SocketAddr } from '../../util/socket-addr';
import { checkConnectHeaders } from './headers';
import { PendingConnect, respondAndClose } from './inbound-connect';
import { Keepalive } from './keepalive';
import type { KeepaliveOptions } from './options';
import type { InboundConnect } from './types';

export interface ServerConnectionInit {
  readonly session: ServerHttp2Session;
  readonly peerIdentity: SpiffeId;
  readonly peerAddr: SocketAddr;
  readonly localAddr: SocketAddr;
  readonly connectionWindow: number;
  readonly firstHeadersTimeout: number;
  readonly keepalive: KeepaliveOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Counts an early failure by reason (the node proxy's failure counter). */
  readonly onFailure: (reason: Reason) => void;
  readonly onConnect: (req: InboundConnect) => void;
  readonly onClosed: (c: ServerConnection) => void;
  /** Streams the peer may reset before we answered, per RESET_WINDOW_MS, before the session is dropped. */
  readonly maxEarlyResets: number;
  /** Peer PING + SETTINGS frames (not ACKs) tolerated per RESET_WINDOW_MS (default 1000). */
  readonly maxControlFrames?: number;
  /** Bytes the peer may park in streams we have not answered yet, summed over the connection (default: connectionWindow). */
  readonly maxPreAcceptBytes?: number;
  /**
   * The session's TLS socket. When we drop a session, Node only end()s the socket and
   * waits for our writes to flush; a peer that never reads would keep it (and its
   * buffers) forever, so we destroy it after a short grace.
   */
  readonly socket?: Socket;
}

/** How long a closed or dropped session's socket may take to flush its GOAWAY and see the peer's FIN before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** Window for counting peer resets of unanswered streams and control frames (abuse defences). */
const RESET_WINDOW_MS = 10_000;

/** Counts events in a fixed window; `hit()` is true once the count passes `limit`. */
class WindowCounter {
  private n = 0;
  private start = 0;
  constructor(
    private readonly clock: Clock,
    readonly limit: number,
  ) {}
  hit(): boolean {
    const now = this.clock.now();
    if (now - this.start > RESET_WINDOW_MS) {
      this.start = now;
      this.n = 0;
    }
    return ++this.n > this.limit;
  }
}

type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * One accepted, authenticated HBONE connection (the HTTP/2 phase). Owns its session:
 * first-HEADERS timeout (slowloris), PING liveness, per-stream CONNECT
 * validation before anything reaches the node proxy's handler, and the abuse limits
 * nghttp2 lacks: rapid reset, paced PING/SETTINGS floods, bytes parked on
 * unanswered streams, and reaping the socket of a session we dropped.
 */
export class ServerConnection {
  readonly session: ServerHttp2Session;
  private readonly init: ServerConnectionInit;
  private firstHeaders: TimerHandle | null;
  private readonly keepalive: Keepalive;
  private streams = 0;
  private readonly earlyResets: WindowCounter;
  private readonly controlFrames: WindowCounter;
  private readonly maxPreAccept: number;
  /** Unanswered streams → bytes the peer has parked in them (flow-control buffered, unread). */
  private readonly unanswered = new Map<ServerHttp2Stream, number>();
  private preAcceptBytes = 0;
  /** Streams we reset ourselves (so the rapid-reset counter does not blame the peer for them). */
  private readonly ourResets = new WeakSet<ServerHttp2Stream>();
  private preAcceptWarned = false;
  private reaping = false;

  constructor(init: ServerConnectionInit) {
    this.init = init;
    this.session = init.session;
    this.session.on('stream', this.onStream);
    this.session.on('error', this.onError);
    this.session.once('close', this.onClose);
    this.earlyResets = new WindowCounter(init.clock, init.maxEarlyResets);
    this.controlFrames = new WindowCounter(init.clock, init.maxControlFrames ?? 1000);
    this.maxPreAccept = init.maxPreAcceptBytes ?? init.connectionWindow;
    // SETTINGS/PING floods (CVE-2019-9515/9512): nghttp2 only notices a
    // flood once 1000 ACKs are queued unsent; a peer that reads its ACKs can keep the
    // session busy forever. Node calls into JS per frame only while these listeners exist.
    this.session.on('ping', this.onPeerControl);
    this.session.on('remoteSettings', this.onPeerControl);
    try {
      this.session.setLocalWindowSize(init.connectionWindow);
    } catch (err) {
      init.logger.debug({ err: errorMessage(err) }, 'cannot raise the HBONE connection window');
    }
    this.firstHeaders = init.clock.setTimeout(this.onFirstHeadersTimeout, init.firstHeadersTimeout);
    this.firstHeaders.unref?.();
    this.keepalive = new Keepalive(this.session, init.clock, init.keepalive, this.onKeepaliveDead);
    // Node ends the socket once a gracefully closed session (GOAWAY: drain, first-HEADERS
    // timeout) has no stream left, then waits for the peer's FIN; a peer that never sends
    // it kept the descriptor in FIN-WAIT-2. Our side is done once it finished writing.
    init.socket?.once('finish', this.onSocketFinished);
  }

  /** Graceful: GOAWAY(NO_ERROR), no new streams, resolves when open streams are done. */
  close(): Promise<void> {
    if (this.session.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.session.once('close', () => resolve());
      if (!this.session.closed) this.session.close();
    });
  }

  destroy(): void {
    this.session.destroy();
    this.init.socket?.destroy();
  }

  /** After we dropped the session: the socket gets CLOSE_GRACE_MS to flush, then goes. */
  private reapSocket(): void {
    const sock = this.init.socket;
    if (!sock || sock.destroyed || this.reaping) return;
    this.reaping = true;
    const timer = this.init.clock.setTimeout(() => sock.destroy(), CLOSE_GRACE_MS);
    timer.unref?.();
    sock.once('close', () => this.init.clock.clearTimeout(timer));
  }

  dump(): Record<string, unknown> {
    return {
      peer: formatSocketAddr(this.init.peerAddr),
      peerIdentity: this.init.peerIdentity.toString(),
      local: formatSocketAddr(this.init.localAddr),
      streams: this.streams,
      unanswered: this.unanswered.size,
      preAcceptBytes: this.preAcceptBytes,
    };
  }

  private clearFirstHeaders(): void {
    if (this.firstHeaders) this.init.clock.clearTimeout(this.firstHeaders);
    this.firstHeaders = null;
  }

  private readonly onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    this.clearFirstHeaders();
    this.streams++;
    stream.on('close', this.onAnyStreamClose);
    const check = checkConnectHeaders(headers);
    if (!check.ok) {
      this.init.onFailure('BAD_REQUEST');
      this.init.logger.warn(
        { reason: 'BAD_REQUEST', status: check.status, peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
        `HBONE request refused: ${check.message}`,
      );
      stream.on('error', ignore);
      respondAndClose(stream, check.status);
      return;
    }
    this.guardPreAccept(stream);
    const req = new PendingConnect(stream, check.authority, this.init.peerIdentity, this.init.peerAddr, this.init.localAddr, headers);
    try {
      this.init.onConnect(req);
    } catch (err) {
      this.init.logger.error({ reason: 'INTERNAL', err: errorMessage(err) }, 'HBONE CONNECT handler threw');
      req.reject(503, 'INTERNAL');
    }
  };

  /**
   * One listener per connection for every stream's 'close' (the emitter passes the stream
   * as `this`), instead of a closure and a once() wrapper kept per open stream.
   */
  private readonly onAnyStreamClose: (this: ServerHttp2Stream) => void = (() => {
    const conn = this;
    return function (this: ServerHttp2Stream): void {
      conn.onStreamClose(this);
    };
  })();

  /**
   * Rapid reset (CVE-2023-44487): nghttp2 answers a burst with
   * GOAWAY but leaves the TCP connection to us, and each reset stream already cost a
   * handler call. Streams the peer cancels before we answered are counted per window;
   * past the limit the session is dropped.
   */
  private onStreamClose(stream: ServerHttp2Stream): void {
    this.streams--;
    this.release(stream);
    if (stream.headersSent || (stream.rstCode ?? 0) === constants.NGHTTP2_NO_ERROR || this.ourResets.has(stream)) return;
    if (!this.earlyResets.hit() || this.session.destroyed) return;
    this.dropAbusive(`peer reset more than ${this.init.maxEarlyResets} unanswered streams within ${RESET_WINDOW_MS}ms`);
  }

  private readonly onPeerControl = (): void => {
    if (!this.controlFrames.hit() || this.session.destroyed) return;
    this.dropAbusive(`peer sent more than ${this.controlFrames.limit} PING/SETTINGS frames within ${RESET_WINDOW_MS}ms`);
  };

  /** GOAWAY(ENHANCE_YOUR_CALM) and drop the session now: its open streams die with it. */
  private dropAbusive(why: string): void {
    this.init.onFailure('STREAM_LIMIT');
    this.init.logger.warn(
      { reason: 'STREAM_LIMIT', peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
      `${why}; dropping the session`,
    );
    try {
      this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      // already going away
    }
    this.session.destroy();
    this.reapSocket();
  }

  /**
   * Bounded buffering before the CONNECT is answered. Node returns the
   * connection-level window to the peer as soon as bytes arrive, whatever the stream does
   * with them, so an unanswered stream may park a whole stream window (4 MiB) and a
   * session 200 of them. ztunnel's h2 returns connection window only when the app reads,
   * which caps a session at the connection window; we restore that cap by counting what
   * Node pushes into streams we have not answered, and resetting (ENHANCE_YOUR_CALM) a
   * stream whose bytes would take the session past `maxPreAccept`.
   *
   * Node delivers inbound DATA through the stream instance's `push`, so a per-stream
   * wrapper sees each chunk without reading it (the handler still gets every byte after
   * accept). The wrapper removes itself at the first chunk after the answer, so accepted
   * streams pay nothing per chunk.
   */
  private guardPreAccept(stream: ServerHttp2Stream): void {
    this.unanswered.set(stream, 0);
    const readable = stream as unknown as { push: Push };
    const original = readable.push;
    readable.push = (chunk, encoding) => {
      if (this.ourResets.has(stream)) return false; // refused: drop what is still in flight
      if (stream.headersSent) {
        this.release(stream);
        return original.call(stream, chunk, encoding);
      }
      // END_STREAM (null): the parked bytes stay parked until answered or closed.
      if (!Buffer.isBuffer(chunk)) return original.call(stream, chunk, encoding);
      if (this.preAcceptBytes + chunk.length > this.maxPreAccept) this.releaseAnswered();
      if (this.preAcceptBytes + chunk.length > this.maxPreAccept) {
        this.refuseParked(stream);
        return false;
      }
      this.preAcceptBytes += chunk.length;
      this.unanswered.set(stream, (this.unanswered.get(stream) ?? 0) + chunk.length);
      return original.call(stream, chunk, encoding);
    };
  }

  /** Stops counting a stream (answered or closed) and restores the prototype's `push`. */
  private release(stream: ServerHttp2Stream): void {
    const parked = this.unanswered.get(stream);
    if (parked === undefined) return;
    this.unanswered.delete(stream);
    this.preAcceptBytes -= parked;
    // Assigned back, never deleted: deleting a property drops the stream object into
    // dictionary mode (a hash lookup for every property access on the data path, and
    // ~1.6 KB more per open stream).
    const readable = stream as unknown as { push: Push };
    readable.push = Object.getPrototypeOf(stream).push as Push;
  }

  /** Answered streams whose parked bytes the splice is now draining no longer count. */
  private releaseAnswered(): void {
    for (const s of [...this.unanswered.keys()]) if (s.headersSent) this.release(s);
  }

  private refuseParked(stream: ServerHttp2Stream): void {
    this.preAcceptBytes -= this.unanswered.get(stream) ?? 0;
    this.unanswered.delete(stream);
    this.ourResets.add(stream);
    if (!this.preAcceptWarned) {
      this.preAcceptWarned = true;
      this.init.onFailure('STREAM_LIMIT');
      this.init.logger.warn(
        { reason: 'STREAM_LIMIT', peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
        `peer sent more than ${this.maxPreAccept} bytes on CONNECT streams not answered yet; resetting them (ENHANCE_YOUR_CALM)`,
      );
    }
    stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  private readonly onError = (err: Error): void => {
    this.init.logger.debug({ peer: formatSocketAddr(this.init.peerAddr), err: errorMessage(err) }, 'HBONE server session error');
    // nghttp2 tore the session down (flood, invalid frames): same stalled-socket risk.
    this.reapSocket();
  };

  private readonly onClose = (): void => {
    this.clearFirstHeaders();
    this.keepalive.stop();
    this.reapSocket();
    this.init.onClosed(this);
  };

  private readonly onFirstHeadersTimeout = (): void => {
    this.firstHeaders = null;
    this.init.onFailure('HEADERS_TIMEOUT');
    this.init.logger.warn(
      { reason: 'HEADERS_TIMEOUT', peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
      `no CONNECT within ${this.init.firstHeadersTimeout}ms of the handshake; closing`,
    );
    // close() sends GOAWAY(NO_ERROR); with no stream open the session then ends at once.
    // The socket goes after the grace whether or not the peer ever answers (a peer that
    // never reads would not even let our FIN out, so 'finish' alone is not enough).
    this.session.close();
    this.reapSocket();
  };

  private readonly onSocketFinished = (): void => this.reapSocket();

  private readonly onKeepaliveDead = (why: string): void => {
    this.init.onFailure('NETWORK_POLICY');
    this.init.logger.warn({ reason: 'NETWORK_POLICY', peer: formatSocketAddr(this.init.peerAddr) }, `HBONE server connection dropped: ${why}`);
    try {
      this.session.goaway(constants.NGHTTP2_NO_ERROR);
    } catch {
      // already closing
    }
    this.session.destroy();
    this.reapSocket();
  };
}

function ignore(): void {}
