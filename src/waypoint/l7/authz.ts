import { bytesInCidr, ipBytes, parseCidr } from '../../util/ip';
import { stringMatches as strMatches } from '../../policy/authorize';
import type { Service } from '../../state/types';
import type { Cidr, Condition, IstioMatch, L7Policy, OperationMatch, PolicyRule, SourceMatch } from '../config/types';
import { istioMatch } from '../config/policy-schema';
import type { L7Peer, L7Request } from './request';
import { refersToService, refersToWaypoint, type WaypointName } from './route-select';
import { splitHost } from './filters';
import { authValues } from '../authn/claims';

/** The outcome of L7 authorization for one request. */
export interface L7AuthzDecision {
  readonly allowed: boolean;
  /** The deciding policy (`namespace/name`); null when no policy decided. */
  readonly policy: string | null;
  readonly why: string;
  /** AUDIT policies that matched (they never change the decision). */
  readonly audited: readonly string[];
}

/** Policies attached to this waypoint or to the destination Service. */
export function policiesFor(policies: readonly L7Policy[], svc: Pick<Service, 'name' | 'namespace'> | null, wp: WaypointName): L7Policy[] {
  return policies.filter((p) => p.targets.some((t) => refersToWaypoint(t, wp) || (svc !== null && refersToService(t, svc, null))));
}

/**
 * Istio's L7 evaluation (CUSTOM is not supported): a matching DENY policy denies; with no
 * ALLOW policy the request is allowed; otherwise one matching ALLOW policy allows and none
 * denies. AUDIT policies are evaluated and reported but never decide. A policy's rules are
 * ORed (no rules = matches nothing); within a rule from, to and when are ANDed.
 */
export function authorizeRequest(policies: readonly L7Policy[], req: L7Request, peer: L7Peer): L7AuthzDecision {
  const audited: string[] = [];
  let denyBy: string | null = null;
  let allowBy: string | null = null;
  let haveAllow = false;
  for (const p of policies) {
    if (p.action === 'ALLOW') haveAllow = true;
    if (p.action === 'DENY' && denyBy !== null) continue;
    if (p.action === 'ALLOW' && (allowBy !== null || denyBy !== null)) continue;
    if (!p.rules.some((r) => ruleMatches(r, req, peer))) continue;
    const key = `${p.meta.namespace}/${p.meta.name}`;
    if (p.action === 'AUDIT') audited.push(key);
    else if (p.action === 'DENY') denyBy = key;
    else allowBy = key;
  }
  if (denyBy !== null) return { allowed: false, policy: denyBy, why: `denied by ${denyBy}`, audited };
  if (!haveAllow) return { allowed: true, policy: null, why: 'no ALLOW policy applies', audited };
  if (allowBy !== null) return { allowed: true, policy: allowBy, why: `allowed by ${allowBy}`, audited };
  return { allowed: false, policy: null, why: 'ALLOW policies apply but none matched', audited };
}

export function ruleMatches(r: PolicyRule, req: L7Request, peer: L7Peer): boolean {
  return (r.from.length === 0 || r.from.some((s) => sourceMatches(s, peer, req))) && (r.to.length === 0 || r.to.some((o) => operationMatches(o, req, peer))) && r.when.every((c) => conditionMatches(c, req, peer));
}

/** Every field that is set must hold; `not` fields hold when no entry matches. */
export function sourceMatches(s: SourceMatch, peer: L7Peer, req: L7Request): boolean {
  const rp = req.auth?.principal ?? '';
  return (
    anyOrUnset(s.requestPrincipals, (m) => strMatches(m, rp)) &&
    noneMatch(s.notRequestPrincipals, (m) => strMatches(m, rp)) &&
    anyOrUnset(s.principals, (m) => strMatches(m, peer.principal)) &&
    noneMatch(s.notPrincipals, (m) => strMatches(m, peer.principal)) &&
    anyOrUnset(s.namespaces, (m) => strMatches(m, peer.namespace)) &&
    noneMatch(s.notNamespaces, (m) => strMatches(m, peer.namespace)) &&
    anyOrUnset(s.ipBlocks, (c) => inCidr(peer.sourceIp, c)) &&
    noneMatch(s.notIpBlocks, (c) => inCidr(peer.sourceIp, c)) &&
    anyOrUnset(s.remoteIpBlocks, (c) => inCidr(peer.remoteIp, c)) &&
    noneMatch(s.notRemoteIpBlocks, (c) => inCidr(peer.remoteIp, c))
  );
}

export function operationMatches(o: OperationMatch, req: L7Request, peer: L7Peer): boolean {
  return (
    anyOrUnset(o.hosts, (m) => hostMatches(m, req.host)) &&
    noneMatch(o.notHosts, (m) => hostMatches(m, req.host)) &&
    anyOrUnset(o.ports, (p) => p === peer.destinationPort) &&
    noneMatch(o.notPorts, (p) => p === peer.destinationPort) &&
    anyOrUnset(o.methods, (m) => strMatches(m, req.method)) &&
    noneMatch(o.notMethods, (m) => strMatches(m, req.method)) &&
    anyOrUnset(o.paths, (m) => strMatches(m, req.path)) &&
    noneMatch(o.notPaths, (m) => strMatches(m, req.path))
  );
}

/** `values` (any) and `notValues` (none), each only when set. */
export function conditionMatches(c: Condition, req: L7Request, peer: L7Peer): boolean {
  const test = conditionTester(c, req, peer);
  return (c.values.length === 0 || c.values.some(test)) && !c.notValues.some(test);
}

function conditionTester(c: Condition, req: L7Request, peer: L7Peer): (v: string) => boolean {
  const k = c.key;
  switch (k.kind) {
    case 'request.headers': {
      const h = req.headers[k.name] ?? '';
      return (v) => strMatches(istioMatch(v), h);
    }
    case 'source.ip':
      return (v) => inCidrText(peer.sourceIp, v);
    case 'remote.ip':
      return (v) => inCidrText(peer.remoteIp, v);
    case 'destination.ip':
      return (v) => inCidrText(peer.destinationIp, v);
    case 'destination.port':
      return (v) => Number(v) === peer.destinationPort;
    case 'source.namespace':
      return (v) => strMatches(istioMatch(v), peer.namespace);
    case 'source.principal':
      return (v) => strMatches(istioMatch(v), peer.principal);
    default: {
      const got = authValues(k, req.auth ?? null);
      return (v) => {
        const m = istioMatch(v);
        return got.some((s) => strMatches(m, s));
      };
    }
  }
}

function anyOrUnset<T>(list: readonly T[], f: (t: T) => boolean): boolean {
  return list.length === 0 || list.some(f);
}

function noneMatch<T>(list: readonly T[], f: (t: T) => boolean): boolean {
  return !list.some(f);
}

/** Hosts compare case-insensitively, with or without the port of the Host header. */
function hostMatches(m: IstioMatch, host: string): boolean {
  const h = host.toLowerCase();
  return strMatches(m, h) || strMatches(m, splitHost(h).host);
}

function inCidr(ip: string, c: Cidr): boolean {
  const a = ipBytes(ip);
  const n = ipBytes(c.ip);
  return !!a && !!n && bytesInCidr(a, n, c.prefixLen);
}

function inCidrText(ip: string, v: string): boolean {
  const c = parseCidr(v);
  return c.ok && inCidr(ip, c);
}
