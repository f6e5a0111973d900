import { constants, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
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
  readonly onConnect: (req: InboundConnect) => void;
  readonly onClosed: (c: ServerConnection) => void;
  /** Streams the peer may reset before we answered, per RESET_WINDOW_MS, before the session is dropped. */
  readonly maxEarlyResets: number;
}

/** Window for counting peer resets of unanswered streams (rapid-reset defence). */
const RESET_WINDOW_MS = 10_000;

/**
 * One accepted, authenticated HBONE connection (the HTTP/2 phase). Owns its session:
 * first-HEADERS timeout (slowloris, field-notes H7), PING liveness, and per-stream
 * CONNECT validation before anything reaches the node proxy's handler.
 */
export class ServerConnection {
  readonly session: ServerHttp2Session;
  private readonly init: ServerConnectionInit;
  private firstHeaders: TimerHandle | null;
  private readonly keepalive: Keepalive;
  private streams = 0;
  private earlyResets = 0;
  private resetWindowStart = 0;

  constructor(init: ServerConnectionInit) {
    this.init = init;
    this.session = init.session;
    this.session.on('stream', this.onStream);
    this.session.on('error', this.onError);
    this.session.once('close', this.onClose);
    try {
      this.session.setLocalWindowSize(init.connectionWindow);
    } catch (err) {
      init.logger.debug({ err: errorMessage(err) }, 'cannot raise the HBONE connection window');
    }
    this.firstHeaders = init.clock.setTimeout(this.onFirstHeadersTimeout, init.firstHeadersTimeout);
    this.firstHeaders.unref?.();
    this.keepalive = new Keepalive(this.session, init.clock, init.keepalive, this.onKeepaliveDead);
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
  }

  dump(): Record<string, unknown> {
    return { peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString(), local: formatSocketAddr(this.init.localAddr), streams: this.streams };
  }

  private clearFirstHeaders(): void {
    if (this.firstHeaders) this.init.clock.clearTimeout(this.firstHeaders);
    this.firstHeaders = null;
  }

  private readonly onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    this.clearFirstHeaders();
    this.streams++;
    stream.once('close', () => this.onStreamClose(stream));
    const check = checkConnectHeaders(headers);
    if (!check.ok) {
      this.init.logger.warn(
        { reason: 'BAD_REQUEST', status: check.status, peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
        `HBONE request refused: ${check.message}`,
      );
      stream.on('error', ignore);
      respondAndClose(stream, check.status);
      return;
    }
    const req = new PendingConnect(stream, check.authority, this.init.peerIdentity, this.init.peerAddr, this.init.localAddr, headers);
    try {
      this.init.onConnect(req);
    } catch (err) {
      this.init.logger.error({ reason: 'INTERNAL', err: errorMessage(err) }, 'HBONE CONNECT handler threw');
      req.reject(503, 'INTERNAL');
    }
  };

  /**
   * Rapid reset (CVE-2023-44487, field-notes H8): nghttp2 answers a burst with
   * GOAWAY but leaves the TCP connection to us, and each reset stream already cost a
   * handler call. Streams the peer cancels before we answered are counted per window;
   * past the limit the session is dropped.
   */
  private onStreamClose(stream: ServerHttp2Stream): void {
    this.streams--;
    if (stream.headersSent || (stream.rstCode ?? 0) === constants.NGHTTP2_NO_ERROR) return;
    const now = this.init.clock.now();
    if (now - this.resetWindowStart > RESET_WINDOW_MS) {
      this.resetWindowStart = now;
      this.earlyResets = 0;
    }
    if (++this.earlyResets <= this.init.maxEarlyResets || this.session.destroyed) return;
    this.init.logger.warn(
      { reason: 'STREAM_LIMIT', peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
      `peer reset more than ${this.init.maxEarlyResets} unanswered streams within ${RESET_WINDOW_MS}ms; dropping the session`,
    );
    try {
      this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      // already going away
    }
    this.session.destroy();
  }

  private readonly onError = (err: Error): void => {
    this.init.logger.debug({ peer: formatSocketAddr(this.init.peerAddr), err: errorMessage(err) }, 'HBONE server session error');
  };

  private readonly onClose = (): void => {
    this.clearFirstHeaders();
    this.keepalive.stop();
    this.init.onClosed(this);
  };

  private readonly onFirstHeadersTimeout = (): void => {
    this.firstHeaders = null;
    this.init.logger.warn(
      { reason: 'HEADERS_TIMEOUT', peer: formatSocketAddr(this.init.peerAddr), peerIdentity: this.init.peerIdentity.toString() },
      `no CONNECT within ${this.init.firstHeadersTimeout}ms of the handshake; closing`,
    );
    // close() sends GOAWAY(NO_ERROR); with no stream open the session then ends at once.
    this.session.close();
  };

  private readonly onKeepaliveDead = (why: string): void => {
    this.init.logger.warn({ reason: 'NETWORK_POLICY', peer: formatSocketAddr(this.init.peerAddr) }, `HBONE server connection dropped: ${why}`);
    try {
      this.session.goaway(constants.NGHTTP2_NO_ERROR);
    } catch {
      // already closing
    }
    this.session.destroy();
  };
}

function ignore(): void {}
