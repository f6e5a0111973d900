import type { Reason } from '../errors';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/node-config';
import type { CertificateSource } from '../identity/types';
import type { Capture } from '../native/capture';
import type { Clock } from '../util/clock';
import { createHboneTransport, type HboneTransport } from '../transport/hbone-transport';
import { transportTuning } from '../app/role-settings';
import type { InboundConnect, ServerCertResolver } from '../transport/hbone/types';
import type { SocketOptions, TcpTuning } from '../transport/socket-opts';

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
 * transport options. Dial descriptors come from the native addon when it is there (SO_MARK
 * before the SYN, port-less source binds, a transparent original source); without it
 * dials are plain Node sockets.
 */
export function createNodeTransport(d: NodeTransportDeps): NodeTransport {
  const c = d.config;
  const capture = d.capture;
  const socket: SocketOptions = {
    ...nodeTcpTuning(c),
    ...(capture.available ? { mark: c.packetMark, createSocket: (family, s) => capture.addon.createDialSocket(family, s.mark, s.bindIp, s.transparent) } : {}),
  };
  return createHboneTransport({
    logger: d.logger.child({ scope: 'hbone' }),
    clock: d.clock,
    certs: d.certs,
    resolveCert: d.resolveCert,
    onConnect: d.onConnect,
    onFailure: d.onFailure,
    ...transportTuning(c),
    socket,
  });
}

/** NODELAY always; keepalive per KEEPALIVE_ENABLED / KEEPALIVE_TIME: for every socket the node dials or its capture listeners accept. */
export function nodeTcpTuning(c: Pick<NodeConfig, 'keepaliveEnabled' | 'keepaliveTime'>): TcpTuning {
  return { noDelay: true, keepalive: c.keepaliveEnabled, keepaliveTime: c.keepaliveTime };
}
