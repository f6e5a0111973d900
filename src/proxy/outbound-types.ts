import type { OutboundRoute } from '../state/route-types';
import type { OutboundHeaders } from './outbound-headers';
import type { DialPreparer, PodSocketSource } from '../transport/dial';
import type { Splicer } from '../transport/splice-outcome';
import type { Logger } from 'pino';
import type { CertificateSource } from '../identity/types';
import type { Capture } from '../native/capture';
import type { DemandLookup } from '../state/demand';
import type { Workload } from '../state/types';
import type { StateView } from '../state/view';
import type { SocketAddr } from '../util/socket-addr';
import type { HboneClient } from '../transport/hbone/types';
import type { Telemetry } from '../telemetry/telemetry';

/**
 * The routing decision the outbound path acts on: the state engine's pure
 * buildOutboundRoute result minus its error case (the router throws a ProxyError with the
 * same reason for that, reported as an early failure).
 */
export type OutboundPlan = Exclude<OutboundRoute, { kind: 'error' }>;

export type OutboundRouter = (src: Workload, dst: SocketAddr, srcIp: string) => OutboundPlan;

export interface OutboundSettings {
  readonly network: string;
  readonly nodeName: string;
  readonly connectTimeoutMs: number;
  /** How long an unknown source IP may wait for its workload to appear in the state. */
  readonly localWorkloadWaitMs: number;
  /** Time allowed for the SOCKS5 greeting + request. */
  readonly socksHandshakeTimeoutMs: number;
  /** CLUSTER_DOMAIN: completes SOCKS5 short names (name.ns, name.ns.svc). */
  readonly clusterDomain: string;
}

/** What outbound connections need (only these capabilities). */
export interface OutboundDeps {
  /** CONNECT header builder (baggage memo, pooled trace ids); one per proxy. */
  readonly headers: OutboundHeaders;
  readonly settings: OutboundSettings;
  readonly logger: Logger;
  readonly state: StateView;
  readonly certs: CertificateSource;
  readonly hbone: HboneClient;
  readonly telemetry: Telemetry;
  readonly capture: Capture;
  readonly illegalPorts: () => ReadonlySet<number>;
  /** Whether a dial target is one of our own listeners (a loop). */
  readonly isOwnAddress: (a: SocketAddr) => boolean;
  readonly route: OutboundRouter;
  /**
   * XDS_ON_DEMAND: lookups that ask the control plane for what the state does not know (the
   * client's own workload, the destination, its waypoint, a SOCKS5 hostname), each a bounded wait.
   */
  readonly demand?: DemandLookup;
  readonly splice: Splicer;
  /** Prepares dialled sockets (NODELAY, keepalive, SO_MARK before the SYN). */
  readonly prepareDial?: DialPreparer;
  /** In-pod mode: sockets made inside the source pod's namespace. */
  readonly podSockets?: PodSocketSource;
}
