import type { Reason } from '../errors';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/node-config';
import type { CertificateSource } from '../identity/types';
import type { Capture } from '../native/capture';
import { socketFd } from '../native/socket-fd';
import type { Clock } from '../util/clock';
import { createHboneTransport, type HboneTransport } from '../transport/hbone-transport';
import type { InboundConnect, ServerCertResolver } from '../transport/hbone/types';
import type { SocketOptions } from '../transport/socket-opts';

export type NodeTransport = HboneTransport;

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
 * The node proxy's HBONE transport: only maps the node config onto the role-neutral
 * transport options. SO_MARK needs the native addon, so it is applied only when
 * transparent capture is available (that is when capture rules exist that must skip the
 * proxy's own sockets).
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
  return createHboneTransport({
    logger: d.logger.child({ scope: 'hbone' }),
    clock: d.clock,
    certs: d.certs,
    resolveCert: d.resolveCert,
    onConnect: d.onConnect,
    onFailure: d.onFailure,
    connectTimeout: c.connectTimeout,
    handshakeTimeout: c.handshakeTimeout,
    firstHeadersTimeout: c.headersTimeout,
    maxStreamsPerConnection: c.poolMaxStreams,
    unusedReleaseTimeout: c.poolUnusedReleaseTimeout,
    maxPendingHandshakesPerPeer: c.maxPendingHandshakesPerPeer,
    maxConcurrentStreams: c.maxStreamsPerPeer,
    maxControlFrames: c.maxControlFrames,
    maxPreAcceptBytes: c.maxPreAcceptBytes,
    h2: { streamWindow: c.h2StreamWindow, connectionWindow: c.h2ConnectionWindow, frameSize: c.h2FrameSize },
    socket,
  });
}
