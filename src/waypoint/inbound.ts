import type { Logger } from 'pino';
import { REASONS, errorMessage, classifyError, type Reason } from '../errors';
import { workloadIdentity, type SpiffeId } from '../identity/spiffe';
import { resolveInboundTarget } from '../state/route';
import { pickServiceEndpoint } from '../state/service-endpoint';
import type { Workload } from '../state/types';
import type { StateView } from '../state/view';
import { ConnectionResult } from '../telemetry/connection-result';
import type { Telemetry } from '../telemetry/telemetry';
import type { InboundConnect } from '../transport/hbone/types';
import type { Splicer } from '../transport/splice-outcome';
import { formatSocketAddr } from '../util/socket-addr';
import { detectProtocol } from './detect';
import type { PortProtocol } from './config/types';
import type { HttpProxy } from './http-proxy';
import type { Endpoint, L7Target } from './l7/decide';
import { forwardedFor, type ConnInfo } from './request-context';
import { StreamSocket } from './stream-socket';
import type { Upstreams } from './upstream';

export interface WaypointInboundDeps {
  readonly state: StateView;
  readonly network: string;
  /** This waypoint's pod IP (its workload in the state); else the address the tunnel arrived at. */
  readonly instanceIp: string | null;
  readonly waypointFor: 'service' | 'workload' | 'all';
  readonly ownPorts: ReadonlySet<number>;
  readonly http: HttpProxy;
  readonly upstreams: Upstreams;
  readonly telemetry: Telemetry;
  readonly splice: Splicer;
  readonly detectTimeoutMs: number;
  readonly random: () => number;
  readonly logger: Logger;
  /** The declared protocol of a Service port (appProtocol / port name), or null to detect. */
  readonly declaredProtocol: (namespace: string, name: string, port: number) => PortProtocol | null;
}

/**
 * Every CONNECT the waypoint's HBONE server accepts: the authority must be a Service (or,
 * with WAYPOINT_FOR workload|all, a workload) that names this waypoint, else 400 like the
 * node proxy. The tunnel is answered 200, its first bytes classify it (HTTP/1.1 request
 * line, HTTP/2 preface, else TCP): HTTP goes to the L7 proxy, TCP to an endpoint of the
 * Service, spliced, with Istio's TCP metrics recorded as the waypoint's inbound side.
 */
export class WaypointInbound {
  constructor(private readonly d: WaypointInboundDeps) {}

  readonly onConnect = (req: InboundConnect): void => {
    void this.handle(req).catch((err: unknown) => this.d.logger.error({ err: errorMessage(err) }, 'internal: waypoint CONNECT handling failed'));
  };

  private async handle(req: InboundConnect): Promise<void> {
    const d = this.d;
    const resolved = this.resolve(req);
    if ('reason' in resolved) {
      d.telemetry.metrics.earlyFailure('inbound', resolved.reason);
      d.telemetry.access.failed({ direction: 'inbound', src: req.peerAddr, dst: req.localAddr }, resolved.reason, resolved.message, {
        'dst.hbone_addr': formatSocketAddr(req.authority),
        'src.identity': req.peerIdentity.toString(),
      });
      req.reject(REASONS[resolved.reason].status === 503 ? 503 : 400, resolved.reason);
      return;
    }
    const info: ConnInfo = {
      peerIdentity: req.peerIdentity,
      peerAddr: req.peerAddr,
      remoteIp: forwardedFor(req.headers['forwarded']) ?? req.peerAddr.ip,
      dst: req.authority,
      target: resolved,
      srcWorkload: sourceWorkload(d.state, d.network, req.peerAddr.ip, req.peerIdentity),
      ...(typeof req.headers['traceparent'] === 'string' ? { tunnelTraceparent: req.headers['traceparent'] } : {}),
    };
    let stream;
    try {
      stream = req.accept();
    } catch {
      return;
    }
    const declared = resolved.kind === 'service' ? d.declaredProtocol(resolved.service.namespace, resolved.service.name, resolved.port) : null;
    const proto = declared === 'tcp' ? 'tcp' : await detectProtocol(stream, d.detectTimeoutMs);
    if (d.logger.isLevelEnabled('debug')) d.logger.debug({ authority: formatSocketAddr(req.authority), protocol: proto, by: declared === 'tcp' ? 'appProtocol' : 'detection' }, 'tunnel protocol');
    const socket = new StreamSocket(stream, req.peerAddr);
    socket.on('error', () => socket.destroy());
    if (proto !== 'tcp') {
      d.http.serve(socket, proto, info);
      return;
    }
    await this.proxyTcp(socket, info);
  }

  /** The authority as a Service or workload this waypoint serves, or why not. */
  private resolve(req: InboundConnect): L7Target | { reason: Reason; message: string } {
    const d = this.d;
    const t = resolveInboundTarget(d.state, { localWorkload: null, localIp: d.instanceIp ?? req.localAddr.ip, authority: formatSocketAddr(req.authority), network: d.network, illegalPorts: d.ownPorts });
    if (t.kind === 'error') return { reason: t.reason, message: t.message };
    const served = t.asWaypointFor;
    if (served === null) return { reason: 'UNKNOWN_DESTINATION', message: `authority ${formatSocketAddr(req.authority)} is this waypoint itself, not a Service or workload it is the waypoint for` };
    if ((served === 'service' && d.waypointFor === 'workload') || (served === 'workload' && d.waypointFor === 'service')) {
      return { reason: 'UNKNOWN_DESTINATION', message: `authority ${formatSocketAddr(req.authority)} is ${served}-addressed traffic, but this waypoint serves ${d.waypointFor} traffic (WAYPOINT_FOR)` };
    }
    const ip = req.authority.ip;
    if (served === 'service') {
      const service = d.state.findServiceByVip({ network: d.network, ip });
      if (service) return { kind: 'service', service, port: req.authority.port };
    }
    const workload = d.state.findWorkloadByAddr({ network: d.network, ip });
    if (workload) return { kind: 'workload', workload, ip, port: req.authority.port };
    return { reason: 'UNKNOWN_DESTINATION', message: `authority ${formatSocketAddr(req.authority)} left the state` };
  }

  /** Opaque TCP through the waypoint: one endpoint, spliced, one connection record. */
  private async proxyTcp(socket: StreamSocket, info: ConnInfo): Promise<void> {
    const d = this.d;
    const t = info.target;
    let ep: Endpoint | null = null;
    let why = '';
    if (t.kind === 'workload') ep = { workload: t.workload, service: null, ip: t.ip, targetPort: t.port, expectedIdentities: [workloadIdentity(t.workload).toString()], hbone: t.workload.protocol === 'HBONE' };
    else {
      const family = info.dst.ip.includes(':') ? 6 : 4;
      const p = pickServiceEndpoint(d.state, t.service, t.port, { src: info.srcWorkload, network: d.network, family, random: d.random });
      if (p.ok) ep = p;
      else why = p.message;
    }
    const result = new ConnectionResult(d.telemetry, {
      direction: 'inbound',
      src: info.peerAddr,
      dst: info.dst,
      hboneAddr: ep ? formatSocketAddr({ ip: ep.ip, port: ep.targetPort }) : null,
      srcWorkload: info.srcWorkload,
      dstWorkload: ep?.workload ?? null,
      dstService: t.kind === 'service' ? t.service : null,
      srcIdentity: info.peerIdentity,
      dstIdentity: ep ? workloadIdentity(ep.workload) : null,
      mtls: true,
    });
    result.setByteSource(socket, 'client');
    if (!ep) {
      socket.destroy();
      result.record({ reason: 'NO_HEALTHY_UPSTREAM', error: why });
      return;
    }
    let up: StreamSocket;
    try {
      up = (await d.upstreams.connect(ep)).socket;
    } catch (err) {
      socket.destroy();
      result.record({ reason: classifyError(err), error: errorMessage(err) });
      return;
    }
    result.onAbort(() => {
      socket.destroy();
      up.destroy();
    });
    result.record(await d.splice(socket, up));
  }
}

/** The client workload for telemetry: the one at the peer IP, only if its identity is the certificate's. */
function sourceWorkload(state: StateView, network: string, ip: string, identity: SpiffeId): Workload | null {
  const w = state.findWorkloadByAddr({ network, ip });
  return w && workloadIdentity(w).equals(identity) ? w : null;
}
