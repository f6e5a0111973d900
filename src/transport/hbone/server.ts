import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { type Reason, ProxyError, errorMessage } from '../../errors';
import type { SpiffeId } from '../../identity/spiffe';
import { systemClock, type Clock } from '../../util/clock';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../../util/socket-addr';
import { h2Tuning, keepaliveOptions, type H2Tuning, type KeepaliveOptions } from './options';
import { ServerConnection } from './server-connection';
import { finishServerHandshake, serverTlsSocket, tlsError } from './tls';
import type { InboundConnect, ServerCertResolver } from './types';

export interface HboneServerOptions {
  readonly logger: Logger;
  /** Picks the certificate by the address the connection arrived at (per-pod identity). */
  readonly resolveCert: ServerCertResolver;
  /** The node proxy's CONNECT handler: authorize, dial, then accept() or reject(). */
  readonly onConnect: (req: InboundConnect) => void;
  readonly clock?: Clock;
  /** HANDSHAKE_TIMEOUT in ms (10 s), counted from handleSocket(). */
  readonly handshakeTimeout?: number;
  /** FIRST_HEADERS_TIMEOUT in ms (10 s), counted from the end of the handshake. */
  readonly firstHeadersTimeout?: number;
  /** INBOUND_MAX_PENDING_HANDSHAKES_PER_PEER (64). */
  readonly maxPendingHandshakesPerPeer?: number;
  /** INBOUND_MAX_STREAMS: advertised SETTINGS_MAX_CONCURRENT_STREAMS (200). */
  readonly maxConcurrentStreams?: number;
  readonly h2?: Partial<H2Tuning>;
  readonly keepalive?: Partial<KeepaliveOptions>;
  /** Peer resets of unanswered streams tolerated per 10 s before the session is dropped (100). */
  readonly maxEarlyResets?: number;
  /** Peer PING + SETTINGS frames (not ACKs) tolerated per 10 s before the session is dropped (1000). */
  readonly maxControlFrames?: number;
  /**
   * Bytes a peer may send, summed over one connection, on CONNECT streams not answered
   * yet (default: the connection window, 16 MiB); past it such streams are reset.
   */
  readonly maxPreAcceptBytes?: number;
  /** Called once per early failure (TLS, bad CONNECT, timeouts, abuse drops) with its reason, for the failure counter. */
  readonly onFailure?: (reason: Reason) => void;
}

/** Connection context handed from the TLS phase to the synchronous http2 'session' event. */
interface Attaching {
  readonly socket: TLSSocket;
  readonly peerIdentity: SpiffeId;
  readonly peerAddr: SocketAddr;
  readonly localAddr: SocketAddr;
}

/**
 * The inbound HBONE server (port 15008 and its per-workload variants). Listeners belong
 * to the node proxy; they hand each accepted TCP socket to `handleSocket`, so one
 * http2 server serves any number of per-workload listeners.
 *
 * Why not http2.createSecureServer: it picks its certificate from SNI, and HBONE clients
 * send none; ztunnel picks it from the listener. So each socket gets its own TLSSocket
 * with the certificate for its local address; after our checks the handshaken socket is
 * fed to a plain http2 server with `emit('connection')`.
 *
 * Phases and their failure reasons (logged once each, WARN "connection failed"):
 * certificate (IDENTITY_ERROR), pending cap (STREAM_LIMIT), TLS (the TLS_* reasons of
 * tls.ts: chain, client certificate, SPIFFE SAN, trust domain; HANDSHAKE_TIMEOUT), then per connection
 * HEADERS_TIMEOUT and per stream BAD_REQUEST (see ServerConnection).
 *
 * HTTP/2 abuse, each proven by test/integration/hbone/abuse-*.test.ts:
 * nghttp2 + the options below handle CONTINUATION floods, oversized or too many headers,
 * HPACK bombs, excess streams and unread-ACK floods; ServerConnection adds what they miss
 * (paced PING/SETTINGS floods, rapid reset, DATA parked on unanswered streams, and
 * sockets of dropped sessions whose peer never reads), each logged as STREAM_LIMIT.
 */
export class HboneServer {
  private readonly h2: http2.Http2Server;
  private readonly o: HboneServerOptions;
  private readonly clock: Clock;
  private readonly tuning: H2Tuning;
  private readonly keepalive: KeepaliveOptions;
  private readonly handshakeTimeout: number;
  private readonly maxPending: number;
  private readonly pendingByPeer = new Map<string, number>();
  private readonly handshaking = new Set<Socket>();
  private readonly connections = new Set<ServerConnection>();
  private attaching: Attaching | null = null;
  private closing = false;

  constructor(o: HboneServerOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.tuning = h2Tuning(o.h2);
    this.keepalive = keepaliveOptions(o.keepalive);
    this.handshakeTimeout = o.handshakeTimeout ?? 10_000;
    this.maxPending = o.maxPendingHandshakesPerPeer ?? 64;
    this.h2 = http2.createServer({
      settings: {
        initialWindowSize: this.tuning.streamWindow,
        maxFrameSize: this.tuning.frameSize,
        maxConcurrentStreams: o.maxConcurrentStreams ?? 200,
        maxHeaderListSize: 64 * 1024,
      },
      maxSessionMemory: this.tuning.maxSessionMemoryMb,
      // Rapid-reset / invalid-frame defences (CVE-2023-44487): a session
      // whose streams keep being refused or that keeps sending bad frames is torn down.
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
      // Oversized headers / HPACK bombs: past 128 pairs or 64 KiB decoded, Node
      // refuses the stream (RST_STREAM ENHANCE_YOUR_CALM) before any 'stream' event.
      maxHeaderListPairs: 128,
    });
    this.h2.on('session', this.onSession);
    this.h2.on('sessionError', (err) => this.o.logger.debug({ err: errorMessage(err) }, 'HBONE session error'));
  }

  /** Takes ownership of an accepted TCP socket. `localAddr`: original destination or local address. */
  handleSocket(socket: Socket, localAddr: SocketAddr): void {
    socket.on('error', ignore);
    let peerAddr: SocketAddr;
    try {
      peerAddr = makeSocketAddr(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    } catch {
      socket.destroy();
      return;
    }
    const peerIp = peerAddr.ip;
    const peer = formatSocketAddr(peerAddr);
    if (this.closing) {
      socket.destroy();
      return;
    }
    const pending = this.pendingByPeer.get(peerIp) ?? 0;
    if (pending >= this.maxPending) {
      this.fail(peer, new ProxyError('STREAM_LIMIT', `${pending} TLS handshakes already pending from ${peerIp}; refusing another`));
      socket.destroy();
      return;
    }
    this.pendingByPeer.set(peerIp, pending + 1);
    this.handshaking.add(socket);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.clock.clearTimeout(timer);
      this.handshaking.delete(socket);
      const n = (this.pendingByPeer.get(peerIp) ?? 1) - 1;
      if (n <= 0) this.pendingByPeer.delete(peerIp);
      else this.pendingByPeer.set(peerIp, n);
    };
    const timer = this.clock.setTimeout(() => {
      if (done) return;
      finish();
      this.fail(peer, new ProxyError('HANDSHAKE_TIMEOUT', `TLS handshake from ${peer} not finished within ${this.handshakeTimeout}ms`));
      socket.destroy();
    }, this.handshakeTimeout);
    timer.unref?.();
    socket.once('close', finish);

    this.o.resolveCert(localAddr).then(
      (cert) => {
        if (done || socket.destroyed) return;
        if (!cert) {
          finish();
          this.fail(peer, new ProxyError('IDENTITY_ERROR', `no certificate for local address ${formatSocketAddr(localAddr)}`));
          socket.destroy();
          return;
        }
        this.startTls(socket, cert, peer, peerAddr, localAddr, finish);
      },
      (err: unknown) => {
        finish();
        this.fail(peer, err instanceof ProxyError ? err : new ProxyError('IDENTITY_ERROR', `certificate for ${formatSocketAddr(localAddr)} unavailable: ${errorMessage(err)}`, {}, err));
        socket.destroy();
      },
    );
  }

  /** Graceful: GOAWAY every connection, refuse new sockets, resolve when all streams ended. */
  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.handshaking) s.destroy();
    await Promise.all([...this.connections].map((c) => c.close()));
  }

  destroy(): void {
    this.closing = true;
    for (const s of this.handshaking) s.destroy();
    for (const c of this.connections) c.destroy();
  }

  stats(): { connections: number; handshaking: number } {
    return { connections: this.connections.size, handshaking: this.handshaking.size };
  }

  dump(): unknown {
    return { handshaking: this.handshaking.size, connections: [...this.connections].map((c) => c.dump()) };
  }

  private startTls(
    raw: Socket,
    cert: Parameters<typeof serverTlsSocket>[1],
    peer: string,
    peerAddr: SocketAddr,
    localAddr: SocketAddr,
    finish: () => void,
  ): void {
    const tls = serverTlsSocket(raw, cert);
    const onError = (err: Error): void => {
      if (!raw.destroyed || !tls.destroyed) tls.destroy();
      finish();
      this.fail(peer, tlsError(err, peer, 'server'));
    };
    tls.once('error', onError);
    tls.once('close', finish);
    tls.once('secure', () => {
      finish();
      tls.removeListener('error', onError);
      tls.on('error', ignore);
      let peerIdentity: SpiffeId;
      try {
        peerIdentity = finishServerHandshake(tls, cert.identity, peer);
      } catch (err) {
        this.fail(peer, tlsError(err, peer, 'server'));
        tls.destroy();
        return;
      }
      if (this.closing) {
        tls.destroy();
        return;
      }
      this.attach(tls, { socket: tls, peerIdentity, peerAddr, localAddr });
    });
  }

  /** http2 emits 'session' synchronously inside emit('connection'), which is how the context travels. */
  private attach(tls: TLSSocket, ctx: Attaching): void {
    this.attaching = ctx;
    try {
      this.h2.emit('connection', tls);
    } finally {
      this.attaching = null;
    }
  }

  private readonly onSession = (session: http2.ServerHttp2Session): void => {
    const ctx = this.attaching;
    if (!ctx) {
      session.destroy();
      return;
    }
    const conn = new ServerConnection({
      session,
      ...ctx,
      connectionWindow: this.tuning.connectionWindow,
      firstHeadersTimeout: this.o.firstHeadersTimeout ?? 10_000,
      keepalive: this.keepalive,
      clock: this.clock,
      logger: this.o.logger,
      onConnect: this.o.onConnect,
      onClosed: (c) => this.connections.delete(c),
      maxEarlyResets: this.o.maxEarlyResets ?? 100,
      onFailure: this.o.onFailure ?? ignore,
      ...(this.o.maxControlFrames !== undefined ? { maxControlFrames: this.o.maxControlFrames } : {}),
      ...(this.o.maxPreAcceptBytes !== undefined ? { maxPreAcceptBytes: this.o.maxPreAcceptBytes } : {}),
    });
    this.connections.add(conn);
  };

  private fail(peer: string, err: ProxyError): void {
    this.o.onFailure?.(err.reason);
    this.o.logger.warn({ reason: err.reason, peer, err: err.message }, 'connection failed');
  }
}

function ignore(): void {}
