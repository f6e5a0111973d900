import type { Scope, Service } from '../types';
import { parseGateway, parseNetworkAddress, parseStringList, type ParseCtx } from './common';
import { childPath, type YNode } from './yaml-reader';

const SERVICE_FIELDS = [
  'name',
  'namespace',
  'hostname',
  'vips',
  'ports',
  'subjectAltNames',
  'waypoint',
  'weightedWaypoints',
  'loadBalancer',
  'ipFamilies',
  'canonical',
  'visibility',
] as const;

const SCOPES: readonly Scope[] = ['Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network'];

/** One entry of `services[]` (ztunnel's camelCase Service). */
export function parseService(ctx: ParseCtx, node: YNode, path: string): Service | undefined {
  const r = ctx.r;
  const o = r.object(node, path, SERVICE_FIELDS);
  if (!o) return undefined;
  const before = r.errors.length;
  const owner = { owner: node };
  const name = r.string(o.get('name'), o.at('name'), { required: true, ...owner });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { required: true, ...owner });
  const hostname = r.string(o.get('hostname'), o.at('hostname'), { required: true, ...owner });
  const key = `${namespace ?? '?'}/${hostname ?? '?'}`;
  const vips = r.list(o.get('vips'), o.at('vips'), '"<network>/<ip>" addresses', (n, p) => parseNetworkAddress(ctx, n, p, true));
  const ports: Record<number, number> = {};
  for (const e of r.entries(o.get('ports'), o.at('ports'), 'a map of servicePort to targetPort')) {
    const pp = childPath(o.at('ports'), e.key);
    const sp = r.portKey(e.key, e.keyNode, pp);
    const tp = r.int(e.value, pp, 0, 65535, 'a valid target port');
    if (sp !== undefined && tp !== undefined) ports[sp] = tp;
  }
  const subjectAltNames = parseStringList(ctx, o.get('subjectAltNames'), o.at('subjectAltNames'), 'SPIFFE identities');
  const waypoint = r.isNull(o.get('waypoint')) ? null : parseGateway(ctx, o.get('waypoint'), o.at('waypoint'), `waypoint of service ${key}`)?.gw;
  const weightedWaypoints = r.list(o.get('weightedWaypoints'), o.at('weightedWaypoints'), '{destination, hboneMtlsPort, weight} entries', (n, p) => {
    const g = parseGateway(ctx, n, p, `weighted waypoint of service ${key}`, ['weight']);
    if (!g) return undefined;
    const weight = r.int(g.extra.get('weight'), childPath(p, 'weight'), 0, 0xffffffff, 'a weight', 1);
    return weight === undefined ? undefined : { destination: g.gw, weight };
  });
  const loadBalancer = parseLoadBalancer(ctx, o.get('loadBalancer'), o.at('loadBalancer'));
  const ipFamilies = r.oneOf(o.get('ipFamilies'), o.at('ipFamilies'), ['Automatic', 'IPv4', 'IPv6', 'Dual'] as const, 'Automatic');
  const canonical = r.bool(o.get('canonical'), o.at('canonical'), false);
  const visibility = r.oneOf(o.get('visibility'), o.at('visibility'), ['Public', 'Namespace'] as const, 'Public');
  if (r.errors.length !== before) return undefined;
  return {
    name: name!,
    namespace: namespace!,
    hostname: hostname!,
    vips,
    ports,
    subjectAltNames,
    waypoint: waypoint ?? null,
    weightedWaypoints,
    loadBalancer: loadBalancer ?? null,
    ipFamilies: ipFamilies!,
    canonical: canonical!,
    visibility: visibility!,
  };
}

function parseLoadBalancer(ctx: ParseCtx, node: YNode, path: string): Service['loadBalancer'] | undefined {
  if (ctx.r.isNull(node)) return null;
  const o = ctx.r.object(node, path, ['routingPreferences', 'mode', 'healthPolicy']);
  if (!o) return undefined;
  const prefs = ctx.r.list(o.get('routingPreferences'), o.at('routingPreferences'), `scopes (${SCOPES.join(', ')})`, (n, p) => ctx.r.oneOf(n, p, SCOPES));
  const mode = ctx.r.oneOf(o.get('mode'), o.at('mode'), ['Standard', 'Strict', 'Failover', 'Passthrough'] as const, 'Standard');
  const healthPolicy = ctx.r.oneOf(o.get('healthPolicy'), o.at('healthPolicy'), ['OnlyHealthy', 'AllowAll'] as const, 'OnlyHealthy');
  if (mode === undefined || healthPolicy === undefined) return undefined;
  return { routingPreferences: prefs, mode, healthPolicy };
}
