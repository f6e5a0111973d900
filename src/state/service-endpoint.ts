import type { Service, Workload } from './types';
import type { StateView } from './view';
import { loadBalance } from './load-balance';
import { workloadIdentity } from '../identity/spiffe';

export interface ServiceEndpointOptions {
  /** The calling workload: Failover/Strict locality ranking is relative to it (null: no ranking). */
  readonly src: Workload | null;
  /** The network the caller can reach directly; an endpoint elsewhere is CROSS_NETWORK. */
  readonly network: string;
  /** Address family of the dialled destination (the endpoint IP prefers it). */
  readonly family: 4 | 6;
  /** A number in [0, 1); injectable so tests are deterministic. */
  readonly random: () => number;
}

/** The endpoint chosen for one connection to a Service port. */
export interface ServiceEndpoint {
  readonly workload: Workload;
  readonly service: Service;
  /** The endpoint IP to dial (one of the workload's IPs, of an allowed family). */
  readonly ip: string;
  /** The service port translated to the endpoint's port. */
  readonly targetPort: number;
  /** SANs the endpoint's certificate may present: its workload identity, then the Service's SANs. */
  readonly expectedIdentities: string[];
  /** Whether the endpoint speaks HBONE (else plain TCP to ip:targetPort). */
  readonly hbone: boolean;
  /** How many endpoints were equally eligible (after health and locality filtering). */
  readonly candidates: number;
}

export type ServiceEndpointPick =
  | ({ readonly ok: true } & ServiceEndpoint)
  | { readonly ok: false; readonly reason: 'NO_HEALTHY_UPSTREAM' | 'CROSS_NETWORK'; readonly message: string };

/**
 * The endpoint-level route, shared by every role that forwards to a Service: the node
 * proxy's outbound path (for a VIP without a waypoint) and the waypoint (after its own L7
 * decision). Keeps healthy endpoints (all of them under AllowAll) that have a usable IP and
 * a target port for `servicePort`, keeps the best locality rank for Failover/Strict, picks
 * one weighted by capacity, and refuses an endpoint on another network. Pure: a function
 * of the state and the options.
 */
export function pickServiceEndpoint(view: StateView, svc: Service, servicePort: number, opts: ServiceEndpointOptions): ServiceEndpointPick {
  const lb = loadBalance(view, svc, servicePort, { src: opts.src, family: opts.family, random: opts.random });
  if (!lb.ok) return { ok: false, reason: 'NO_HEALTHY_UPSTREAM', message: lb.why };
  const ep = lb.endpoint;
  if (ep.workload.network !== opts.network) {
    return {
      ok: false,
      reason: 'CROSS_NETWORK',
      message: `endpoint ${ep.workload.uid} of ${svc.namespace}/${svc.hostname} is on network ${JSON.stringify(ep.workload.network)}`,
    };
  }
  return {
    ok: true,
    workload: ep.workload,
    service: svc,
    ip: ep.ip,
    targetPort: ep.targetPort,
    expectedIdentities: expectedIdentities(ep.workload, svc),
    hbone: ep.workload.protocol === 'HBONE',
    candidates: lb.candidates,
  };
}

/** The workload identity plus the Service's SANs, without duplicates. */
export function expectedIdentities(w: Workload, svc: Service | null): string[] {
  const out = [workloadIdentity(w).toString()];
  for (const san of svc?.subjectAltNames ?? []) if (!out.includes(san)) out.push(san);
  return out;
}
