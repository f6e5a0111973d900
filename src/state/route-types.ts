import type { Reason } from '../errors';
import type { SocketAddr } from '../util/socket-addr';
import type { Service, Workload } from './types';

/** Where a waypoint hop goes, for explain and the access log. */
export interface WaypointHop {
  readonly workload: Workload;
  /** The waypoint Service (hostname-addressed waypoints), whose SANs are expected too. */
  readonly service: Service | null;
  /** 'service' = the Service's waypoint, 'workload' = the destination pod's own waypoint. */
  readonly boundTo: 'service' | 'workload';
}

/**
 * The outbound routing decision. Pure data; the
 * outbound connection acts on it. For a waypoint hop, `destWorkload` is the waypoint
 * (metrics describe the actual next hop) and `finalWorkload` the workload dialled, when known.
 */
export type OutboundRoute =
  | {
      readonly kind: 'hbone';
      /** podIP:15008, or waypointIP:hboneMtlsPort. */
      readonly nextHop: SocketAddr;
      /** `ip:port` CONNECT authority: selected pod IP:targetPort, or for a waypoint the destination as dialled. */
      readonly authority: string;
      /** spiffe:// URIs; the peer certificate must carry one of them. */
      readonly expectedIdentities: readonly string[];
      readonly destWorkload: Workload;
      readonly destService: Service | null;
      readonly viaWaypoint: boolean;
      readonly waypoint: WaypointHop | null;
      readonly finalWorkload: Workload | null;
      readonly targetPort: number;
    }
  | { readonly kind: 'tcp'; readonly nextHop: SocketAddr; readonly destWorkload: Workload; readonly destService: Service | null; readonly targetPort: number }
  | { readonly kind: 'passthrough'; readonly nextHop: SocketAddr; readonly destService: Service | null; readonly why: string }
  | { readonly kind: 'error'; readonly reason: Reason; readonly message: string };

export interface OutboundRouteInput {
  /** The local (source) workload. */
  readonly srcWorkload: Workload;
  /** The original destination as dialled (SO_ORIGINAL_DST / SOCKS5 target). */
  readonly dst: SocketAddr;
  /** The proxy's network (NETWORK). */
  readonly network: string;
  /** The source socket's IP (defaults to the source workload's IPs) for the from-waypoint check. */
  readonly srcIp?: string;
  /** The proxy's own ports (15001, 15006, 15008, [15080]); loopback/local destinations on them are self-calls. */
  readonly illegalPorts?: ReadonlySet<number>;
  /** Extra addresses that count as "this proxy" for the self-call check (besides loopback). */
  readonly localIps?: ReadonlySet<string>;
  /** HBONE port of destination workloads (15008). */
  readonly hbonePort?: number;
  /** [0,1) random source (tests inject a seeded one). */
  readonly random?: () => number;
}

export type InboundTargetResult =
  | {
      readonly kind: 'target';
      readonly workload: Workload;
      /** Always the local pod IP (never the authority's VIP). */
      readonly ip: string;
      readonly targetPort: number;
      /** Candidate Services for telemetry: all of the workload's (IP authority), or the one named. */
      readonly services: readonly Service[];
      /** Set when the authority was not this pod's own IP but something it is the waypoint for. */
      readonly asWaypointFor: 'service' | 'workload' | null;
    }
  | { readonly kind: 'error'; readonly reason: Reason; readonly message: string };

export interface InboundTargetInput {
  /** The workload the listener serves; when null it is looked up by `localIp`. */
  readonly localWorkload: Workload | null;
  /** The local address the connection arrived on (podIP). */
  readonly localIp: string;
  /**
   * The CONNECT `:authority` (`ip:port`, `[v6]:port` or `hostname:port`) or the plaintext
   * original destination; already parsed when the caller has it as an address (the node's
   * HBONE server parses every authority), so it is not formatted and parsed again.
   */
  readonly authority: string | SocketAddr;
  readonly network: string;
  readonly illegalPorts: ReadonlySet<number>;
}
