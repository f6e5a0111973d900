import { formatSocketAddr, parseSocketAddr, splitHostPort } from '../util/socket-addr';
import type { Service, Workload } from './types';
import type { StateView } from './view';
import type { InboundTargetInput, InboundTargetResult } from './route-types';
import { canonicalIp } from '../util/ip';
import { gatewayIsWorkload } from './waypoint';

/**
 * Where an inbound connection goes (ztunnel inbound.rs: validate_destination + upstream
 * selection). The upstream IP is always the local pod IP. An IP authority must be this
 * pod's IP, unless the pod has an application tunnel or is the waypoint of the Service or
 * Workload the authority names (the "sandwich" case); anything else is UNKNOWN_DESTINATION
 * (400). A hostname authority maps service port → target port. Our own ports as target → ILLEGAL_PORT (503).
 */
export function resolveInboundTarget(view: StateView, input: InboundTargetInput): InboundTargetResult {
  const localIp = canonicalIp(input.localIp) ?? input.localIp;
  const w = input.localWorkload ?? view.findWorkloadByAddr({ network: input.network, ip: localIp });
  if (!w) return { kind: 'error', reason: 'LOCAL_WORKLOAD_UNKNOWN', message: `no workload is known at ${input.network}/${localIp}` };

  const auth = input.authority;
  const ipAuth = typeof auth === 'string' ? parseSocketAddr(auth) : auth;
  let targetPort: number;
  let services: Service[];
  let asWaypointFor: 'service' | 'workload' | null = null;
  if (ipAuth) {
    if (!w.workloadIps.includes(ipAuth.ip) && !w.applicationTunnel) {
      asWaypointFor = waypointTarget(view, w, input.network, ipAuth.ip);
      if (asWaypointFor === null) {
        return { kind: 'error', reason: 'UNKNOWN_DESTINATION', message: `authority ${typeof auth === 'string' ? auth : formatSocketAddr(auth)} is not ${w.uid} (${w.workloadIps.join(', ') || 'no IP'}) nor a service or workload it is the waypoint for` };
      }
    }
    targetPort = ipAuth.port;
    services = servicesOf(view, w);
  } else {
    const hp = typeof auth === 'string' ? splitHostPort(auth) : null;
    if (!hp || hp.port < 1 || hp.port > 65535) return { kind: 'error', reason: 'BAD_REQUEST', message: `authority ${JSON.stringify(auth)} is neither ip:port nor hostname:port` };
    const svc = view.findServiceByHostname(w.namespace, hp.host) ?? view.allServices().find((s) => s.hostname === hp.host);
    if (!svc) return { kind: 'error', reason: 'UNKNOWN_SERVICE', message: `no service has hostname ${hp.host}` };
    const own = w.services[`${svc.namespace}/${svc.hostname}`]?.[hp.port];
    const mapped = own !== undefined && own !== 0 ? own : svc.ports[hp.port];
    if (mapped === undefined || mapped === 0) return { kind: 'error', reason: 'UNKNOWN_SERVICE', message: `service ${svc.namespace}/${svc.hostname} has no port ${hp.port} for ${w.uid}` };
    targetPort = mapped;
    services = [svc];
  }
  if (input.illegalPorts.has(targetPort)) {
    return { kind: 'error', reason: 'ILLEGAL_PORT', message: `target port ${targetPort} is one of this proxy's own ports` };
  }
  return { kind: 'target', workload: w, ip: w.workloadIps.includes(localIp) ? localIp : (w.workloadIps[0] ?? localIp), targetPort, services, asWaypointFor };
}

/** Whether `me` is the configured waypoint of the Service VIP or Workload at `ip`. */
function waypointTarget(view: StateView, me: Workload, network: string, ip: string): 'service' | 'workload' | null {
  const svc = view.findServiceByVip({ network, ip });
  if (svc) {
    const gws = [svc.waypoint, ...svc.weightedWaypoints.map((x) => x.destination)];
    if (gws.some((g) => g && gatewayIsWorkload(view, g, me))) return 'service';
  }
  const target = view.findWorkloadByAddr({ network, ip });
  if (target?.waypoint && gatewayIsWorkload(view, target.waypoint, me)) return 'workload';
  return null;
}

/** The Services this workload is an endpoint of (that exist in the state). */
export function servicesOf(view: StateView, w: Workload): Service[] {
  const out: Service[] = [];
  for (const key of Object.keys(w.services)) {
    const slash = key.indexOf('/');
    const s = view.findServiceByHostname(key.slice(0, slash), key.slice(slash + 1));
    if (s) out.push(s);
  }
  return out;
}

