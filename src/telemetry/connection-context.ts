import type { SpiffeId } from '../identity/spiffe';
import type { Service, Workload } from '../state/types';
import type { SocketAddr } from '../util/socket-addr';

export type Direction = 'outbound' | 'inbound';

/**
 * Everything telemetry needs to describe one proxied connection, fixed when the
 * ConnectionResult opens (ztunnel's ConnectionOpen + CommonTrafficLabels inputs).
 * Identities are set only from something verified: our own certificate when we send
 * HBONE, the peer certificate on inbound; never from xDS or headers.
 */
export interface ConnectionContext {
  readonly direction: Direction;
  /** The client: outbound = the local app, inbound = the TCP peer (peer proxy or plaintext client). */
  readonly src: SocketAddr;
  /** Outbound: the next hop (podIP:15008 or ip:port for plain TCP); inbound: the local address. */
  readonly dst: SocketAddr;
  /** The CONNECT authority when HBONE is used, else null. */
  readonly hboneAddr: string | null;
  readonly srcWorkload: Workload | null;
  readonly dstWorkload: Workload | null;
  readonly dstService: Service | null;
  readonly srcIdentity: SpiffeId | null;
  readonly dstIdentity: SpiffeId | null;
  /** True when the connection rides mTLS (HBONE); plaintext and passthrough are false. */
  readonly mtls: boolean;
}

/** What an early failure (before a ConnectionResult exists) knows. */
export interface EarlyFailure {
  readonly direction: Direction;
  readonly src: SocketAddr | null;
  readonly dst: SocketAddr | null;
}
