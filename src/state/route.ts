import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import type { GatewayAddress, Service, Workload } from './types';
import type { StateView } from './view';
import type { OutboundRoute, OutboundRouteInput } from './route-types';
import { isLoopback } from '../util/ip';
import { pickIp } from './load-balance';
import { expectedIdentities, pickServiceEndpoint } from './service-endpoint';
import { familyOf, isFromWaypoint, resolveGateway, serviceWaypoint } from './waypoint';

export type { OutboundRoute, OutboundRouteInput, InboundTargetInput, InboundTargetResult, WaypointHop } from './route-types';
export { resolveInboundTarget } from './inbound-target';
export { pickServiceEndpoint, type ServiceEndpoint, type ServiceEndpointOptions, type ServiceEndpointPick } from './service-endpoint';

import { DEFAULT_HBONE_PORT } from './normalize';

export { DEFAULT_HBONE_PORT };

/**
 * The outbound routing decision (ztunnel's build_request), as a pure function of the state:
 *  - loopback/local destination on one of our own ports → SELF_CALL;
 *  - a workload IP → that workload, through its workload waypoint unless the source is it;
 *  - a Service VIP → its waypoint if it has one, else Passthrough mode → passthrough, else a load-balanced endpoint (NO_HEALTHY_UPSTREAM
 *    when none); service-addressed traffic skips the endpoint's workload waypoint;
 *  - anything else → passthrough to the original destination;
 *  - direct hops use HBONE to ip:15008 or plain TCP to ip:targetPort by the destination's protocol.
 */
export function buildOutboundRoute(view: StateView, input: OutboundRouteInput): OutboundRoute {
  const { dst, network, srcWorkload: src } = input;
  const random = input.random ?? Math.random;
  const hbonePort = input.hbonePort ?? DEFAULT_HBONE_PORT;
  if (input.illegalPorts?.has(dst.port) && (isLoopback(dst.ip) || input.localIps?.has(dst.ip))) {
    return { kind: 'error', reason: 'SELF_CALL', message: `destination ${formatSocketAddr(dst)} is this proxy's own port ${dst.port}` };
  }
  const family = familyOf(dst.ip);

  const wl = view.findWorkloadByAddr({ network, ip: dst.ip });
  if (wl) {
    if (wl.waypoint && !isFromWaypoint(view, wl.waypoint, src, input.srcIp)) {
      return viaWaypoint(view, wl.waypoint, 'workload', { src, dst, network, service: null, finalWorkload: wl, family, random });
    }
    return direct(wl, null, dst.ip, dst.port, hbonePort);
  }

  const svc = view.findServiceByVip({ network, ip: dst.ip }, src.namespace);
  if (!svc) return { kind: 'passthrough', nextHop: dst, destService: null, why: `${dst.ip} is neither a workload nor a service VIP on network ${JSON.stringify(network)}` };

  // As in ztunnel, a Service's waypoint is always used, even by the waypoint itself; only
  // workload-addressed traffic has the from-waypoint exception.
  const wp = serviceWaypoint(svc, random);
  if (wp) {
    return viaWaypoint(view, wp, 'service', { src, dst, network, service: svc, finalWorkload: null, family, random });
  }
  if (svc.loadBalancer?.mode === 'Passthrough') {
    return { kind: 'passthrough', nextHop: dst, destService: svc, why: `service ${svc.namespace}/${svc.hostname} uses load-balancer mode Passthrough` };
  }
  const ep = pickServiceEndpoint(view, svc, dst.port, { src, network, family, random });
  if (!ep.ok) return { kind: 'error', reason: ep.reason, message: ep.message };
  return direct(ep.workload, svc, ep.ip, ep.targetPort, hbonePort);
}

function direct(w: Workload, svc: Service | null, ip: string, targetPort: number, hbonePort: number): OutboundRoute {
  // The dialled IP when it is the workload's, else one of the same family.
  const chosen = w.workloadIps.includes(ip) ? ip : (pickIp(w, svc, familyOf(ip)) ?? ip);
  if (w.protocol === 'HBONE') {
    return {
      kind: 'hbone',
      nextHop: makeSocketAddr(chosen, hbonePort),
      authority: formatSocketAddr({ ip: chosen, port: targetPort }),
      expectedIdentities: expectedIdentities(w, svc),
      destWorkload: w,
      destService: svc,
      viaWaypoint: false,
      waypoint: null,
      finalWorkload: w,
      targetPort,
    };
  }
  return { kind: 'tcp', nextHop: makeSocketAddr(chosen, targetPort), destWorkload: w, destService: svc, targetPort };
}

function viaWaypoint(
  view: StateView,
  gw: GatewayAddress,
  boundTo: 'service' | 'workload',
  o: { src: Workload; dst: SocketAddr; network: string; service: Service | null; finalWorkload: Workload | null; family: 4 | 6; random: () => number },
): OutboundRoute {
  const r = resolveGateway(view, gw, { src: o.src, family: o.family, random: o.random });
  if (!r.ok) return { kind: 'error', reason: r.reason, message: r.message };
  if (r.workload.network !== o.network) {
    return { kind: 'error', reason: 'CROSS_NETWORK', message: `waypoint ${r.workload.uid} is on network ${JSON.stringify(r.workload.network)}` };
  }
  return {
    kind: 'hbone',
    nextHop: makeSocketAddr(r.ip, r.port),
    // The waypoint routes on what the app dialled (VIP:port or podIP:port), untranslated.
    authority: formatSocketAddr(o.dst),
    expectedIdentities: expectedIdentities(r.workload, r.service),
    destWorkload: r.workload,
    destService: o.service,
    viaWaypoint: true,
    waypoint: { workload: r.workload, service: r.service, boundTo },
    finalWorkload: o.finalWorkload,
    targetPort: o.dst.port,
  };
}
