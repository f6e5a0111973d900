import type { Reason } from '../errors';
import { SpiffeId, workloadIdentity } from '../identity/spiffe';
import { formatSocketAddr, parseSocketAddr, type SocketAddr } from '../util/socket-addr';
import type { Service, Workload } from '../state/types';
import { policyKey, serviceKey } from '../state/types';
import type { StateView } from '../state/view';
import { buildOutboundRoute } from '../state/route';
import { loadBalance } from '../state/load-balance';
import { canonicalIp } from '../util/ip';
import { authorize, policyMatches } from './authorize';
import type { AuthzDecision } from './types';

export interface ExplainInput {
  readonly srcIp: string;
  /** `ip:port` as the app dials it. */
  readonly dst: string;
  readonly network: string;
  /** A SPIFFE id to assume; undefined = the source workload's; 'none' or '' = no identity (plaintext). */
  readonly identity?: string;
  readonly illegalPorts?: ReadonlySet<number>;
  readonly random?: () => number;
}

export interface ExplainHop {
  /** direct-hbone, direct-tcp, waypoint (HBONE to a waypoint), waypoint-forward (the waypoint's own HBONE), passthrough, plaintext. */
  readonly type: 'direct-hbone' | 'direct-tcp' | 'waypoint' | 'waypoint-forward' | 'passthrough' | 'plaintext';
  readonly from: string;
  readonly nextHop: string;
  readonly authority: string | null;
  readonly expectedSans: readonly string[];
  readonly to: string | null;
  readonly note: string;
}

export interface PolicyEvaluation {
  readonly policy: string;
  readonly action: 'Allow' | 'Deny';
  readonly scope: string;
  readonly dryRun: boolean;
  readonly matched: boolean;
}

export interface ExplainAuthz {
  readonly destination: string;
  readonly peerIp: string;
  readonly peerIdentity: string | null;
  readonly targetPort: number;
  readonly decision: AuthzDecision;
  readonly evaluated: readonly PolicyEvaluation[];
}

export interface ExplainResult {
  readonly source: { readonly ip: string; readonly workload: string | null; readonly identity: string | null };
  readonly destination: { readonly addr: string; readonly kind: 'workload' | 'service' | 'unknown'; readonly name: string | null };
  readonly outcome: 'hbone' | 'tcp' | 'passthrough' | 'plaintext' | 'error';
  readonly error: { readonly reason: Reason; readonly message: string } | null;
  readonly hops: readonly ExplainHop[];
  /** Authorization at the final destination's node proxy; null when none runs (passthrough, TCP, error). */
  readonly authorization: ExplainAuthz | null;
}

const DEFAULT_ILLEGAL = new Set([15001, 15006, 15008]);

/**
 * Explains one connection end to end: the source
 * workload, every hop the proxies would take (direct, waypoint, passthrough) with next hop,
 * authority and expected SANs, and at the destination the authorization decision with
 * every policy evaluated. Uses the same pure functions as the data path.
 */
export function explain(view: StateView, input: ExplainInput): ExplainResult | { invalid: string } {
  const dst = parseSocketAddr(input.dst);
  if (!dst) return { invalid: `destination ${JSON.stringify(input.dst)} is not ip:port` };
  const srcIp = canonicalIp(input.srcIp);
  if (srcIp === null) return { invalid: `source ${JSON.stringify(input.srcIp)} is not an IP address` };
  let given: SpiffeId | null | undefined;
  if (input.identity !== undefined) {
    if (input.identity === '' || input.identity === 'none') given = null;
    else {
      given = SpiffeId.tryParse(input.identity);
      if (!given) return { invalid: `identity ${JSON.stringify(input.identity)} is not spiffe://<td>/ns/<ns>/sa/<sa>` };
    }
  }
  const random = input.random ?? Math.random;
  const src = view.findWorkloadByAddr({ network: input.network, ip: srcIp }) ?? null;
  const identity = given !== undefined ? given : src ? workloadIdentity(src) : null;
  const dstWl = view.findWorkloadByAddr({ network: input.network, ip: dst.ip });
  const dstSvc = dstWl ? undefined : view.findServiceByVip({ network: input.network, ip: dst.ip }, src?.namespace);
  const base = {
    source: { ip: srcIp, workload: src?.uid ?? null, identity: identity?.toString() ?? null },
    destination: { addr: formatSocketAddr(dst), kind: dstWl ? ('workload' as const) : dstSvc ? ('service' as const) : ('unknown' as const), name: dstWl?.uid ?? (dstSvc ? serviceKey(dstSvc) : null) },
  };
  if (!src) return explainUnmeshedSource(view, input, base, dst, srcIp, dstWl, dstSvc, identity, random);

  const route = buildOutboundRoute(view, { srcWorkload: src, dst, network: input.network, srcIp, illegalPorts: input.illegalPorts ?? DEFAULT_ILLEGAL, random });
  const from = `${src.uid} (${srcIp})`;
  switch (route.kind) {
    case 'error':
      return { ...base, outcome: 'error', error: { reason: route.reason, message: route.message }, hops: [], authorization: null };
    case 'passthrough':
      return { ...base, outcome: 'passthrough', error: null, hops: [{ type: 'passthrough', from, nextHop: formatSocketAddr(route.nextHop), authority: null, expectedSans: [], to: null, note: `plain TCP to the original destination: ${route.why}` }], authorization: null };
    case 'tcp':
      return {
        ...base,
        outcome: 'tcp',
        error: null,
        hops: [{ type: 'direct-tcp', from, nextHop: formatSocketAddr(route.nextHop), authority: null, expectedSans: [], to: route.destWorkload.uid, note: 'destination does not use HBONE: plain TCP, no mTLS and no policy at the destination' }],
        authorization: null,
      };
    case 'hbone':
      break;
  }
  const hops: ExplainHop[] = [];
  const sans = route.expectedIdentities;
  if (!route.viaWaypoint) {
    hops.push({ type: 'direct-hbone', from, nextHop: formatSocketAddr(route.nextHop), authority: route.authority, expectedSans: sans, to: route.destWorkload.uid, note: route.destService ? `load-balanced endpoint of ${serviceKey(route.destService)}` : 'workload addressed directly' });
    return { ...base, outcome: 'hbone', error: null, hops, authorization: authzAt(view, route.destWorkload, srcIp, identity, route.targetPort) };
  }
  const wp = route.destWorkload;
  hops.push({ type: 'waypoint', from, nextHop: formatSocketAddr(route.nextHop), authority: route.authority, expectedSans: sans, to: wp.uid, note: `${route.waypoint?.boundTo ?? 'service'} waypoint; L7 policy and routing happen there` });
  // The waypoint (an L7 proxy) then opens its own HBONE to a backend; the destination's
  // node proxy authorizes the WAYPOINT's identity and IP, not the original client.
  const final = route.finalWorkload ?? pickBackend(view, route.destService, dst, wp, random);
  if (!final) return { ...base, outcome: 'hbone', error: null, hops, authorization: null };
  const tp = route.finalWorkload ? dst.port : backendPort(final, route.destService, dst.port);
  const wpIp = wp.workloadIps[0] ?? '';
  hops.push({
    type: 'waypoint-forward',
    from: `${wp.uid} (${wpIp})`,
    nextHop: `${final.workloadIps[0] ?? '?'}:15008`,
    authority: `${final.workloadIps[0] ?? '?'}:${tp}`,
    expectedSans: [workloadIdentity(final).toString(), ...(route.destService?.subjectAltNames ?? [])],
    to: final.uid,
    note: route.finalWorkload ? 'to the workload dialled' : `one endpoint of ${route.destService ? serviceKey(route.destService) : '?'} (the waypoint chooses)`,
  });
  return { ...base, outcome: 'hbone', error: null, hops, authorization: authzAt(view, final, wpIp, workloadIdentity(wp), tp) };
}

/** A client outside the mesh reaches an HBONE workload's plaintext inbound (15006): no identity. */
function explainUnmeshedSource(
  view: StateView,
  input: ExplainInput,
  base: Pick<ExplainResult, 'source' | 'destination'>,
  dst: SocketAddr,
  srcIp: string,
  dstWl: Workload | undefined,
  dstSvc: Service | undefined,
  identity: SpiffeId | null,
  random: () => number,
): ExplainResult {
  const from = `unknown source (${srcIp})`;
  let target = dstWl;
  let port = dst.port;
  if (!target && dstSvc) {
    const lb = loadBalance(view, dstSvc, dst.port, { src: null, family: dst.family, random });
    if (!lb.ok) return { ...base, outcome: 'error', error: { reason: 'NO_HEALTHY_UPSTREAM', message: lb.why }, hops: [], authorization: null };
    target = lb.endpoint.workload;
    port = lb.endpoint.targetPort;
  }
  const hop: ExplainHop = {
    type: 'plaintext',
    from,
    nextHop: target ? `${target.workloadIps[0] ?? dst.ip}:${port}` : formatSocketAddr(dst),
    authority: null,
    expectedSans: [],
    to: target?.uid ?? null,
    note: target?.protocol === 'HBONE' ? 'not a mesh workload: no outbound proxy; the destination proxy captures it on 15006 with no peer identity' : 'not a mesh workload and no mesh destination: plain TCP',
  };
  const authz = target && target.protocol === 'HBONE' ? authzAt(view, target, srcIp, input.identity === undefined ? null : identity, port) : null;
  return { ...base, outcome: 'plaintext', error: null, hops: [hop], authorization: authz };
}

function pickBackend(view: StateView, svc: Service | null, dst: SocketAddr, wp: Workload, random: () => number): Workload | null {
  if (!svc) return null;
  const lb = loadBalance(view, svc, dst.port, { src: wp, family: dst.family, random });
  return lb.ok ? lb.endpoint.workload : null;
}

function backendPort(w: Workload, svc: Service | null, port: number): number {
  if (!svc) return port;
  const own = w.services[serviceKey(svc)]?.[port];
  if (own) return own;
  const t = svc.ports[port];
  return t ? t : port;
}

function authzAt(view: StateView, w: Workload, peerIp: string, identity: SpiffeId | null, port: number): ExplainAuthz {
  const ctx = { srcIp: peerIp, srcIdentity: identity, dstIp: w.workloadIps[0] ?? '', dstPort: port, dstWorkload: w };
  const policies = view.policiesFor(w);
  return {
    destination: w.uid,
    peerIp,
    peerIdentity: identity?.toString() ?? null,
    targetPort: port,
    decision: authorize(policies, ctx),
    evaluated: policies.map((p) => ({ policy: policyKey(p), action: p.action, scope: p.scope, dryRun: p.dryRun, matched: policyMatches(p, ctx) })),
  };
}
