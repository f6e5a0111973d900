import type { Logger } from 'pino';
import type { Clock } from '../util/clock';
import type { DialPreparer } from './dial';
import type { H2Tuning, KeepaliveOptions } from './hbone/options';
import { HbonePool, type HbonePoolOptions } from './hbone/pool';
import { HboneServer, type HboneServerOptions } from './hbone/server';
import { prepareDial, type SocketOptions } from './socket-opts';

/**
 * Everything an HBONE endpoint needs, in plain values: no node or waypoint config type
 * reaches the transport, so each role maps its own settings (and its own identity) onto
 * these options. The client side's fields are the pool's, the server side's the server's
 * (same names, same defaults when unset).
 */
export interface HboneTransportOptions
  extends Pick<HbonePoolOptions, 'certs' | 'connectTimeout' | 'maxStreamsPerConnection' | 'unusedReleaseTimeout'>,
    Pick<
      HboneServerOptions,
      'resolveCert' | 'onConnect' | 'onFailure' | 'handshakeTimeout' | 'firstHeadersTimeout' | 'maxPendingHandshakesPerPeer' | 'maxConcurrentStreams' | 'maxControlFrames' | 'maxPreAcceptBytes'
    > {
  readonly logger: Logger;
  readonly clock: Clock;
  /** HTTP/2 windows and frame size, for both directions. */
  readonly h2?: Partial<H2Tuning>;
  /** PING liveness, for both directions. */
  readonly keepalive?: Partial<KeepaliveOptions>;
  /** Options for every TCP socket the endpoint dials (HBONE connections and plain legs). */
  readonly socket: SocketOptions;
}

/** A client pool, a server, and the preparer for every other TCP leg the same role dials. */
export interface HboneTransport {
  readonly client: HbonePool;
  readonly server: HboneServer;
  /** Applies `socket` (NODELAY, keepalive, SO_MARK before the SYN) to a socket about to be dialled. */
  readonly prepareDial: DialPreparer;
}

/**
 * Builds one role's HBONE transport. SO_MARK failures are logged once per transport (they
 * repeat on every dial and mean one thing: missing CAP_NET_ADMIN), never fatal.
 */
export function createHboneTransport(o: HboneTransportOptions): HboneTransport {
  const client = new HbonePool({
    certs: o.certs,
    logger: o.logger,
    clock: o.clock,
    socket: o.socket,
    maxStreamsPerConnection: o.maxStreamsPerConnection,
    unusedReleaseTimeout: o.unusedReleaseTimeout,
    connectTimeout: o.connectTimeout,
    h2: o.h2,
    keepalive: o.keepalive,
  });
  const server = new HboneServer({
    logger: o.logger,
    clock: o.clock,
    resolveCert: o.resolveCert,
    onConnect: o.onConnect,
    onFailure: o.onFailure,
    handshakeTimeout: o.handshakeTimeout,
    firstHeadersTimeout: o.firstHeadersTimeout,
    maxPendingHandshakesPerPeer: o.maxPendingHandshakesPerPeer,
    maxConcurrentStreams: o.maxConcurrentStreams,
    maxControlFrames: o.maxControlFrames,
    maxPreAcceptBytes: o.maxPreAcceptBytes,
    h2: o.h2,
    keepalive: o.keepalive,
  });
  let markWarned = false;
  const onMarkError = (err: Error): void => {
    if (markWarned) return;
    markWarned = true;
    o.logger.warn({ error: err.message, mark: o.socket.mark }, 'cannot set SO_MARK on proxy sockets; capture rules may loop them back (needs CAP_NET_ADMIN)');
  };
  const prepare: DialPreparer = (family, localAddress, transparent) => {
    const p = prepareDial(family, localAddress, o.socket, transparent);
    return { localAddress: p.localAddress, attach: (s) => p.attach(s, onMarkError) };
  };
  return { client, server, prepareDial: prepare };
}

