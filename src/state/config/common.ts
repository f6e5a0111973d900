import { isMap, isScalar } from 'yaml';
import type { GatewayAddress, VipAddress } from '../types';
import { canonicalIpString, parseCidr } from '../ip';
import { show, type YamlReader, type YNode } from './yaml-reader';

/** A cross-reference checked once the whole file is read (waypoint → service, workload → policy). */
export interface PendingRef {
  readonly kind: 'service' | 'policy';
  readonly key: string;
  readonly path: string;
  readonly node: YNode;
  readonly what: string;
}

export interface ParseCtx {
  readonly r: YamlReader;
  readonly refs: PendingRef[];
}

export const DEFAULT_HBONE_PORT = 15008;

/** An IP literal, canonicalised (v4-mapped → v4, IPv6 compressed) so index keys agree. */
export function parseIpValue(ctx: ParseCtx, node: YNode, path: string): string | undefined {
  const s = ctx.r.string(node, path, { required: true });
  if (s === undefined) return undefined;
  const ip = canonicalIpString(s);
  if (ip === null) {
    ctx.r.error(node, path, `${JSON.stringify(s)} is not an IP address (expected e.g. 10.0.0.1 or fd00::1)`);
    return undefined;
  }
  return ip;
}

/** `"<network>/<ip>"` or `"<network>/<ip>/<len>"`; the network may be empty (`"/10.96.0.1"`). */
export function parseNetworkAddress(ctx: ParseCtx, node: YNode, path: string, allowCidr: boolean): VipAddress | undefined {
  const s = ctx.r.string(node, path, { required: true });
  if (s === undefined) return undefined;
  const slash = s.indexOf('/');
  const expected = allowCidr ? '"<network>/<ip>" or "<network>/<ip>/<prefix>" (network may be empty: "/10.96.0.1")' : '"<network>/<ip>" (network may be empty: "/10.0.0.1")';
  if (slash < 0) {
    ctx.r.error(node, path, `${JSON.stringify(s)} is not a network address; expected ${expected}`);
    return undefined;
  }
  const network = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  if (!allowCidr && rest.includes('/')) {
    ctx.r.error(node, path, `${JSON.stringify(s)} is not a network address; expected ${expected}`);
    return undefined;
  }
  const c = parseCidr(rest);
  if (!c.ok) {
    ctx.r.error(node, path, `${JSON.stringify(s)}: ${c.message}; expected ${expected}`);
    return undefined;
  }
  return { network, ip: c.ip, prefixLen: c.prefixLen };
}

export const GATEWAY_FIELDS = ['destination', 'hboneMtlsPort'] as const;

/**
 * `{destination: "<network>/<ip>" | {namespace, hostname}, hboneMtlsPort}`. A hostname
 * destination must name a Service in the same file (checked after the whole file is read).
 */
export function parseGateway(ctx: ParseCtx, node: YNode, path: string, what: string, extraFields: readonly string[] = []): { gw: GatewayAddress; extra: Map<string, YNode> } | undefined {
  const o = ctx.r.object(node, path, [...GATEWAY_FIELDS, ...extraFields]);
  if (!o) return undefined;
  const port = ctx.r.int(o.get('hboneMtlsPort'), o.at('hboneMtlsPort'), 1, 65535, 'a port', DEFAULT_HBONE_PORT);
  const dn = o.get('destination');
  const extra = new Map<string, YNode>(extraFields.map((f) => [f, o.get(f)]));
  if (ctx.r.isNull(dn)) {
    ctx.r.error(dn, o.at('destination'), 'required field is missing (expected "<network>/<ip>" or {namespace, hostname})', node);
    return undefined;
  }
  if (isScalar(dn)) {
    const a = parseNetworkAddress(ctx, dn, o.at('destination'), false);
    if (!a || port === undefined) return undefined;
    return { gw: { kind: 'address', network: a.network, ip: a.ip, hboneMtlsPort: port }, extra };
  }
  if (!isMap(dn)) {
    ctx.r.error(dn, o.at('destination'), `expected "<network>/<ip>" or {namespace, hostname}, got ${show(dn)}`);
    return undefined;
  }
  const h = ctx.r.object(dn, o.at('destination'), ['namespace', 'hostname']);
  if (!h) return undefined;
  const namespace = ctx.r.string(h.get('namespace'), h.at('namespace'), { required: true, owner: dn });
  const hostname = ctx.r.string(h.get('hostname'), h.at('hostname'), { required: true, owner: dn });
  if (namespace === undefined || hostname === undefined || port === undefined) return undefined;
  ctx.refs.push({ kind: 'service', key: `${namespace}/${hostname}`, path: o.at('destination'), node: dn, what });
  return { gw: { kind: 'hostname', namespace, hostname, hboneMtlsPort: port }, extra };
}

export function parseStringList(ctx: ParseCtx, node: YNode, path: string, what: string): string[] {
  return ctx.r.list(node, path, what, (n, p) => ctx.r.string(n, p, { required: true }));
}
