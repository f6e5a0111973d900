import type { Logger } from 'pino';
import type { Reason } from '../errors';
import type { CertificateSource } from '../identity/types';
import type { Clock } from '../util/clock';
import type { DialPreparer } from './dial';
import type { H2Tuning, KeepaliveOptions } from './hbone/options';
import { HbonePool } from './hbone/pool';
import { HboneServer } from './hbone/server';
import type { InboundConnect, ServerCertResolver } from './hbone/types';
import { prepareDial, type SocketOptions } from './socket-opts';

/**
 * Everything an HBONE endpoint needs, in plain values: no node or waypoint config type
 * reaches the transport, so each role maps its own settings (and its own identity) onto
 * these options. Unset numbers take the transport's defaults.
 */
export interface HboneTransportOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** Client identity: the certificate presented when dialling, per local workload. */
  readonly certs: CertificateSource;
  /** Server identity: picks the certificate by the address a connection arrived at. */
  readonly resolveCert: ServerCertResolver;
  /** Called for every CONNECT stream the server accepts at the protocol level. */
  readonly onConnect: (req: InboundConnect) => void;
  /** Early inbound failures (TLS, bad CONNECT, timeouts, abuse) by reason, for the failure counter. */
  readonly onFailure?: (reason: Reason) => void;
  /** TCP + TLS + SETTINGS budget for an outgoing HBONE connection, ms. */
  readonly connectTimeout?: number;
  /** Inbound TLS handshake budget, ms. */
  readonly handshakeTimeout?: number;
  /** Inbound budget from the end of the handshake to the first CONNECT headers, ms. */
  readonly firstHeadersTimeout?: number;
  /** Client pool: streams per pooled connection before another is opened. */
  readonly maxStreamsPerConnection?: number;
  /** Client pool: how long an idle pooled connection is kept, ms. */
  readonly unusedReleaseTimeout?: number;
  /** Server: TLS handshakes in flight per peer IP. */
  readonly maxPendingHandshakesPerPeer?: number;
  /** Server: advertised SETTINGS_MAX_CONCURRENT_STREAMS. */
  readonly maxConcurrentStreams?: number;
  /** Server: peer PING + SETTINGS frames tolerated per 10 s. */
  readonly maxControlFrames?: number;
  /** Server: bytes a peer may send on CONNECT streams not answered yet, per connection. */
  readonly maxPreAcceptBytes?: number;
  readonly h2?: Partial<H2Tuning>;
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
    ...defined({
      maxStreamsPerConnection: o.maxStreamsPerConnection,
      unusedReleaseTimeout: o.unusedReleaseTimeout,
      connectTimeout: o.connectTimeout,
      h2: o.h2,
      keepalive: o.keepalive,
    }),
  });
  const server = new HboneServer({
    logger: o.logger,
    clock: o.clock,
    resolveCert: o.resolveCert,
    onConnect: o.onConnect,
    ...defined({
      onFailure: o.onFailure,
      handshakeTimeout: o.handshakeTimeout,
      firstHeadersTimeout: o.firstHeadersTimeout,
      maxPendingHandshakesPerPeer: o.maxPendingHandshakesPerPeer,
      maxConcurrentStreams: o.maxConcurrentStreams,
      maxControlFrames: o.maxControlFrames,
      maxPreAcceptBytes: o.maxPreAcceptBytes,
      h2: o.h2,
      keepalive: o.keepalive,
    }),
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

/** Drops undefined entries so the pool's and server's own defaults apply. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
