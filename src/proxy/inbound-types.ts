import type { DialPreparer, PodSocketSource } from '../transport/dial';
import type { Logger } from 'pino';
import type { AuthzContext, AuthzDecision } from '../policy/types';
import type { DemandLookup } from '../state/demand';
import type { Service, Workload } from '../state/types';
import type { StateView } from '../state/view';
import type { SocketAddr } from '../util/socket-addr';
import type { Capture } from '../native/capture';
import type { Splicer } from '../transport/splice-outcome';
import type { DryRunReport } from './dry-run';
import type { Telemetry } from '../telemetry/telemetry';

/** Where an inbound connection goes: a local workload and the app address to dial. */
export interface InboundTarget {
  readonly workload: Workload;
  /** podIP:targetPort (never one of the proxy's ports). */
  readonly target: SocketAddr;
  readonly service: Service | null;
}

/**
 * Resolves a CONNECT authority (or a plaintext original destination) to a local target.
 * Throws ProxyError UNKNOWN_DESTINATION (400) or ILLEGAL_PORT (503). The composition root
 * adapts the state engine's resolveInboundTarget to this.
 */
export type InboundResolver = (authority: SocketAddr, localAddr: SocketAddr) => InboundTarget;

export type Authorizer = (ctx: AuthzContext) => AuthzDecision;

export interface InboundSettings {
  readonly network: string;
  readonly nodeName: string;
  readonly connectTimeoutMs: number;
  /** Dial the app from the client's own IP (ENABLE_ORIG_SRC, or detected): see appSource. */
  readonly origSrc: boolean;
  /**
   * LOCALHOST_APP_TUNNEL: a PROXY application tunnel is dialled at the pod's loopback
   * (127.0.0.1 or ::1, from loopback), so only the proxy can reach the tunnel port; the
   * client's address travels in the header. Only where the dial is made inside the pod's
   * namespace (in-pod mode): from the host, loopback is the host's own.
   */
  readonly localhostAppTunnel: boolean;
}

/** What inbound handlers need. No certificate access: TLS is the transport's job. */
export interface InboundDeps {
  readonly settings: InboundSettings;
  readonly logger: Logger;
  readonly state: StateView;
  readonly telemetry: Telemetry;
  readonly capture: Capture;
  readonly resolveTarget: InboundResolver;
  readonly authorize: Authorizer;
  /** XDS_ON_DEMAND: the local target and the peer's workload are asked for when the state does not know them (bounded wait). */
  readonly demand?: DemandLookup;
  /** Makes dry-run policy matches visible (log + metric) at admission. */
  readonly reportDryRun?: DryRunReport;
  /** Whether an address is one of our own listeners: dialling it would loop back into the proxy. */
  readonly isOwnAddress: (a: SocketAddr) => boolean;
  readonly splice: Splicer;
  readonly prepareDial?: DialPreparer;
  /** In-pod mode: the app is dialled from a socket made in its own pod's namespace. */
  readonly podSockets?: PodSocketSource;
}
