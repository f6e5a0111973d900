import type { Scope, Service } from '../types';
import { normalizeService, type ServiceDraft } from '../normalize';
import { normalized, opt, parseGateway, parseNetworkAddress, parseStringList, type ParseCtx } from './common';
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

/** One entry of `services[]` (ztunnel's camelCase Service); defaults and value checks are normalizeService's. */
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
  const ports: Record<number, number> = {};
  for (const e of r.entries(o.get('ports'), o.at('ports'), 'a map of servicePort to targetPort')) {
    const pp = childPath(o.at('ports'), e.key);
    const sp = r.portKey(e.key, e.keyNode, pp);
    const tp = r.int(e.value, pp, 0, 65535, 'a valid target port');
    if (sp !== undefined && tp !== undefined) ports[sp] = tp;
  }
  const draft: ServiceDraft = {
    name,
    namespace,
    hostname,
    vips: r.list(o.get('vips'), o.at('vips'), '"<network>/<ip>" addresses', (n, p) => parseNetworkAddress(ctx, n, p, true)),
    ports,
    subjectAltNames: parseStringList(ctx, o.get('subjectAltNames'), o.at('subjectAltNames'), 'SPIFFE identities'),
    waypoint: opt(ctx, o.get('waypoint'), (n) => parseGateway(ctx, n, o.at('waypoint'), `waypoint of service ${key}`)?.gw),
    weightedWaypoints: r.list(o.get('weightedWaypoints'), o.at('weightedWaypoints'), '{destination, hboneMtlsPort, weight} entries', (n, p) => {
      const g = parseGateway(ctx, n, p, `weighted waypoint of service ${key}`, ['weight']);
      if (!g) return undefined;
      return { destination: g.gw, weight: opt(ctx, g.extra.get('weight'), (w) => r.int(w, childPath(p, 'weight'), 0, 0xffffffff, 'a weight')) };
    }),
    loadBalancer: parseLoadBalancer(ctx, o.get('loadBalancer'), o.at('loadBalancer')),
    ipFamilies: opt(ctx, o.get('ipFamilies'), (n) => r.oneOf(n, o.at('ipFamilies'), ['Automatic', 'IPv4', 'IPv6', 'Dual'] as const)),
    canonical: opt(ctx, o.get('canonical'), (n) => r.bool(n, o.at('canonical'), false)),
    visibility: opt(ctx, o.get('visibility'), (n) => r.oneOf(n, o.at('visibility'), ['Public', 'Namespace'] as const)),
  };
  const s = normalized(ctx, o, normalizeService(draft));
  return r.errors.length === before ? s : undefined;
}

function parseLoadBalancer(ctx: ParseCtx, node: YNode, path: string): ServiceDraft['loadBalancer'] {
  if (ctx.r.isNull(node)) return null;
  const o = ctx.r.object(node, path, ['routingPreferences', 'mode', 'healthPolicy']);
  if (!o) return undefined;
  return {
    routingPreferences: ctx.r.list(o.get('routingPreferences'), o.at('routingPreferences'), `scopes (${SCOPES.join(', ')})`, (n, p) => ctx.r.oneOf(n, p, SCOPES)),
    mode: opt(ctx, o.get('mode'), (n) => ctx.r.oneOf(n, o.at('mode'), ['Standard', 'Strict', 'Failover', 'Passthrough'] as const)),
    healthPolicy: opt(ctx, o.get('healthPolicy'), (n) => ctx.r.oneOf(n, o.at('healthPolicy'), ['OnlyHealthy', 'AllowAll'] as const)),
  };
}
