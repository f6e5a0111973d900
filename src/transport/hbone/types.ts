import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SpiffeId } from '../../identity/spiffe';
import type { WorkloadCertificate } from '../../identity/types';
import type { SocketAddr } from '../../util/socket-addr';

/**
 * Contract between the HBONE transport (src/transport/hbone: TLS, HTTP/2, pool, CONNECT framing)
 * and the node proxy's connection handling (outbound/inbound phases, telemetry).
 */

/** Where and how to open one CONNECT stream. */
export interface HboneTarget {
  /** The peer proxy: `podIP:15008` or `waypointIP:15008`. */
  readonly nextHop: SocketAddr;
  /** CONNECT `:authority`: `ip:port` (IPv6 bracketed). */
  readonly authority: string;
  /** The server is accepted only if one URI SAN equals one of these (spiffe://…). */
  readonly expectedIdentities: readonly string[];
  /** Our identity; the client certificate comes from the certificate source. */
  readonly srcIdentity: SpiffeId;
  /** Pool-reuse guard: a pooled connection made for another workload uid behind the same IP is not reused. */
  readonly peerUid: string;
  /** Request headers: baggage, forwarded, traceparent (built by the caller). */
  readonly headers: Readonly<Record<string, string>>;
  /** Local address to bind the TCP connection to (the source workload IP on loopback meshes); optional. */
  readonly localAddress?: string;
  /** In-pod: makes the TCP socket inside the source pod's namespace (marked); the pool key still uses localAddress. */
  readonly createSocket?: (family: 4 | 6, localAddress?: string, transparent?: boolean) => Socket;
}

/** An open, 200-answered CONNECT stream; bytes may flow. The caller owns it from here. */
export interface HboneStream {
  readonly stream: Duplex;
  /** The verified SPIFFE identity of the peer proxy. */
  readonly peerIdentity: SpiffeId;
  /** Response headers (e.g. baggage) for telemetry. */
  readonly responseHeaders: Readonly<Record<string, string | string[] | undefined>>;
}

export interface HboneClient {
  /** Opens a CONNECT stream, reusing a pooled connection when allowed. Rejects with ProxyError. */
  connect(target: HboneTarget): Promise<HboneStream>;
  /** Drops pooled connections to a peer whose workload changed or left (by uid). */
  evictPeer(peerUid: string): void;
  /** Sends GOAWAY on every pooled connection and waits for streams to finish. */
  close(): Promise<void>;
  destroy(): void;
  dump(): unknown;
}

/** What the inbound HBONE server hands the node proxy for each well-formed CONNECT. */
export interface InboundConnect {
  /** Already checked: method CONNECT, no :scheme/:path, authority parsed. */
  readonly authority: SocketAddr;
  readonly peerIdentity: SpiffeId;
  /** TCP peer (the client's node proxy or waypoint). */
  readonly peerAddr: SocketAddr;
  /** Local (or original-destination) address the TLS connection arrived at. */
  readonly localAddr: SocketAddr;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Reply with a non-200 status and end the stream (400/401/503). */
  reject(status: 400 | 401 | 503, reason: string): void;
  /** Reply 200 and return the stream for splicing. Call only after the upstream connected. */
  accept(responseHeaders?: Record<string, string>): Duplex;
  /** Fires if the stream dies before accept/reject (peer reset, session gone). */
  readonly aborted: Promise<void>;
}

/** Chooses the server certificate by the address the connection arrived at (ztunnel: per-pod listener). */
export type ServerCertResolver = (localAddr: SocketAddr) => Promise<WorkloadCertificate | undefined>;
