import type { Reason } from '../errors';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/node-config';
import type { CertificateSource } from '../identity/types';
import type { Capture } from '../native/capture';
import { socketFd } from '../native/socket-fd';
import type { Clock } from '../util/clock';
import { HbonePool } from './hbone/pool';
import { HboneServer } from './hbone/server';
import type { InboundConnect, ServerCertResolver } from './hbone/types';
import { prepareDial, type SocketOptions } from './socket-opts';
import type { DialPreparer } from './dial';

export interface NodeTransport {
  readonly client: HbonePool;
  readonly server: HboneServer;
  /** Options for every TCP leg the proxy dials (NODELAY, keepalive, SO_MARK before the SYN when capture is on). */
  readonly prepareDial: DialPreparer;
}

export interface NodeTransportDeps {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly certs: CertificateSource;
  readonly capture: Capture;
  readonly resolveCert: ServerCertResolver;
  readonly onConnect: (req: InboundConnect) => void;
  /** Early inbound failures (TLS, bad CONNECT, timeouts, abuse) by reason, for the failure counter. */
  readonly onFailure: (reason: Reason) => void;
}

/**
 * Builds the HBONE client pool and server from the node config (the transport is another
 * stream's module; this is only its configuration). SO_MARK needs the native addon, so it
 * is applied only when transparent capture is available (that is when capture rules exist
 * that must skip the proxy's own sockets).
 */
export function createNodeTransport(d: NodeTransportDeps): NodeTransport {
  const c = d.config;
  const capture = d.capture;
  const markSocket = capture.available ? (s: Socket, mark: number) => capture.addon.setMark(socketFd(s), mark) : undefined;
  const socket: SocketOptions = {
    noDelay: true,
    keepalive: c.keepaliveEnabled,
    keepaliveTime: c.keepaliveTime,
    ...(markSocket ? { mark: c.packetMark, markSocket } : {}),
  };
  const h2 = { streamWindow: c.h2StreamWindow, connectionWindow: c.h2ConnectionWindow, frameSize: c.h2FrameSize };
  const logger = d.logger.child({ scope: 'hbone' });
  let markWarned = false;
  const client = new HbonePool({
    certs: d.certs,
    logger,
    clock: d.clock,
    maxStreamsPerConnection: c.poolMaxStreams,
    unusedReleaseTimeout: c.poolUnusedReleaseTimeout,
    connectTimeout: c.connectTimeout,
    h2,
    socket,
  });
  const server = new HboneServer({
    logger,
    clock: d.clock,
    resolveCert: d.resolveCert,
    onConnect: d.onConnect,
    handshakeTimeout: c.handshakeTimeout,
    firstHeadersTimeout: c.headersTimeout,
    maxPendingHandshakesPerPeer: c.maxPendingHandshakesPerPeer,
    maxConcurrentStreams: c.maxStreamsPerPeer,
    onFailure: d.onFailure,
    maxControlFrames: c.maxControlFrames,
    maxPreAcceptBytes: c.maxPreAcceptBytes,
    h2,
  });
  const onMarkError = (err: Error): void => {
    if (markWarned) return;
    markWarned = true;
    logger.warn({ error: err.message, mark: c.packetMark }, 'cannot set SO_MARK on proxy sockets; capture rules may loop them back (needs CAP_NET_ADMIN)');
  };
  const prepare: DialPreparer = (family, localAddress) => {
    const d = prepareDial(family, localAddress, socket);
    return { localAddress: d.localAddress, attach: (s) => d.attach(s, onMarkError) };
  };
  return { client, server, prepareDial: prepare };
}
