import type { Reason } from '../errors';
import type { GatewayAddress, Service, Workload } from './types';
import type { StateView } from './view';
import { loadBalance, pickIp, weightedPick } from './load-balance';
import { canonicalIp } from '../util/ip';

export function sameIdentity(a: Workload, b: Workload): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}

/** A service's waypoint: a weighted pick from weightedWaypoints when any has weight, else `waypoint`. */
export function serviceWaypoint(svc: Service, random: () => number): GatewayAddress | null {
  if (svc.weightedWaypoints.length > 0) {
    const w = weightedPick(svc.weightedWaypoints, (x) => x.weight, random);
    if (w) return w.destination;
  }
  return svc.waypoint;
}

export type ResolvedGateway =
  | { readonly ok: true; readonly workload: Workload; readonly service: Service | null; readonly ip: string; readonly port: number }
  | { readonly ok: false; readonly reason: Reason; readonly message: string };

/**
 * A GatewayAddress to a concrete waypoint instance: by address, the workload on that IP;
 * by hostname, a load-balanced endpoint of the waypoint Service (port = hboneMtlsPort).
 */
export function resolveGateway(view: StateView, gw: GatewayAddress, opts: { src: Workload | null; family: 4 | 6; random: () => number }): ResolvedGateway {
  let svc: Service | undefined;
  let name: string;
  if (gw.kind === 'address') {
    // An address names a waypoint pod directly, or a waypoint Service's VIP.
    const w = view.findWorkloadByAddr({ network: gw.network, ip: gw.ip });
    if (w) return { ok: true, workload: w, service: null, ip: canonicalIp(gw.ip) ?? gw.ip, port: gw.hboneMtlsPort };
    svc = view.findServiceByVip({ network: gw.network, ip: gw.ip });
    name = `${gw.network}/${gw.ip}`;
    if (!svc) return { ok: false, reason: 'UNKNOWN_WAYPOINT', message: `waypoint address ${name} is neither a known workload nor a service VIP` };
  } else {
    svc = view.findServiceByHostname(gw.namespace, gw.hostname);
    name = `${gw.namespace}/${gw.hostname}`;
    if (!svc) return { ok: false, reason: 'UNKNOWN_WAYPOINT', message: `waypoint service ${name} is not known` };
  }
  const lb = loadBalance(view, svc, gw.hboneMtlsPort, { src: opts.src, family: opts.family, random: opts.random, waypointMode: true });
  if (!lb.ok) return { ok: false, reason: 'NO_HEALTHY_UPSTREAM', message: `waypoint ${name}: ${lb.why}` };
  return { ok: true, workload: lb.endpoint.workload, service: svc, ip: lb.endpoint.ip, port: gw.hboneMtlsPort };
}

/** Every workload a gateway address could resolve to (for "is this traffic from/for the waypoint"). */
export function gatewayInstances(view: StateView, gw: GatewayAddress): readonly Workload[] {
  if (gw.kind === 'address') {
    const w = view.findWorkloadByAddr({ network: gw.network, ip: gw.ip });
    if (w) return [w];
    const vipSvc = view.findServiceByVip({ network: gw.network, ip: gw.ip });
    return vipSvc ? view.endpointsOf(vipSvc) : [];
  }
  const svc = view.findServiceByHostname(gw.namespace, gw.hostname);
  return svc ? view.endpointsOf(svc) : [];
}

/**
 * ztunnel's check_from_waypoint: the source is the waypoint only if it has the waypoint's
 * identity AND the connection comes from one of the waypoint's IPs (identity alone could
 * be shared by an unrelated pod of the same service account).
 */
export function isFromWaypoint(view: StateView, gw: GatewayAddress, src: Workload, srcIp: string | undefined): boolean {
  const ips = srcIp !== undefined ? [canonicalIp(srcIp) ?? srcIp] : src.workloadIps;
  return gatewayInstances(view, gw).some((wp) => sameIdentity(wp, src) && wp.workloadIps.some((ip) => ips.includes(ip)));
}

/** Whether `gw` resolves to the workload `me` (its IP, or it is an endpoint of the waypoint Service). */
export function gatewayIsWorkload(view: StateView, gw: GatewayAddress, me: Workload): boolean {
  return gatewayInstances(view, gw).some((w) => w.uid === me.uid);
}

export function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

export { pickIp };
