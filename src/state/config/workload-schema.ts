import type { Workload } from '../types';
import { normalizeWorkload, type WorkloadDraft } from '../normalize';
import { normalized, opt, parseGateway, type ParseCtx } from './common';
import { childPath, type YNode } from './yaml-reader';

const WORKLOAD_FIELDS = [
  'uid',
  'name',
  'namespace',
  'serviceAccount',
  'trustDomain',
  'workloadIps',
  'protocol',
  'networkMode',
  'network',
  'node',
  'hostname',
  'waypoint',
  'networkGateway',
  'applicationTunnel',
  'authorizationPolicies',
  'status',
  'clusterId',
  'locality',
  'canonicalName',
  'canonicalRevision',
  'workloadName',
  'workloadType',
  'nativeTunnel',
  'capacity',
  'services',
] as const;

const WORKLOAD_TYPES = ['deployment', 'cronjob', 'pod', 'job'] as const;

/**
 * One entry of `workloads[]`: ztunnel's camelCase Workload plus the `services` endpoint map.
 * Reads what is written (absent fields stay absent) and leaves defaults and value checks to
 * normalizeWorkload. Returns undefined when anything is wrong (the errors are in ctx.r).
 */
export function parseWorkload(ctx: ParseCtx, node: YNode, path: string): Workload | undefined {
  const r = ctx.r;
  const o = r.object(node, path, WORKLOAD_FIELDS);
  if (!o) return undefined;
  const before = r.errors.length;
  const owner = { owner: node };
  const str = (k: (typeof WORKLOAD_FIELDS)[number]): string | undefined => r.string(o.get(k), o.at(k));
  const uid = r.string(o.get('uid'), o.at('uid'), { required: true, ...owner });
  const draft: WorkloadDraft = {
    uid,
    name: r.string(o.get('name'), o.at('name'), { required: true, ...owner }),
    namespace: r.string(o.get('namespace'), o.at('namespace'), { required: true, ...owner }),
    serviceAccount: str('serviceAccount'),
    trustDomain: str('trustDomain'),
    workloadIps: r.list(o.get('workloadIps'), o.at('workloadIps'), 'IP addresses', (n, p) => r.string(n, p, { required: true })),
    protocol: opt(ctx, o.get('protocol'), (n) => r.oneOf(n, o.at('protocol'), ['HBONE', 'TCP'] as const)),
    networkMode: opt(ctx, o.get('networkMode'), (n) => r.oneOf(n, o.at('networkMode'), ['Standard', 'HostNetwork'] as const)),
    network: str('network'),
    node: str('node'),
    hostname: str('hostname'),
    waypoint: opt(ctx, o.get('waypoint'), (n) => parseGateway(ctx, n, o.at('waypoint'), `waypoint of workload ${uid ?? '?'}`)?.gw),
    networkGateway: opt(ctx, o.get('networkGateway'), (n) => parseGateway(ctx, n, o.at('networkGateway'), `network gateway of workload ${uid ?? '?'}`)?.gw),
    applicationTunnel: parseAppTunnel(ctx, o.get('applicationTunnel'), o.at('applicationTunnel')),
    authorizationPolicies: r.list(o.get('authorizationPolicies'), o.at('authorizationPolicies'), '"namespace/name" policy keys', (n, p) => {
      const s = r.string(n, p, { required: true });
      if (s !== undefined) ctx.refs.push({ kind: 'policy', key: s, path: p, node: n, what: `authorizationPolicies of workload ${uid ?? '?'}` });
      return s;
    }),
    status: opt(ctx, o.get('status'), (n) => r.oneOf(n, o.at('status'), ['Healthy', 'Unhealthy'] as const)),
    clusterId: str('clusterId'),
    locality: parseLocality(ctx, o.get('locality'), o.at('locality')),
    canonicalName: str('canonicalName'),
    canonicalRevision: str('canonicalRevision'),
    workloadName: str('workloadName'),
    workloadType: opt(ctx, o.get('workloadType'), (n) => r.oneOf(n, o.at('workloadType'), WORKLOAD_TYPES)),
    nativeTunnel: opt(ctx, o.get('nativeTunnel'), (n) => r.bool(n, o.at('nativeTunnel'), false)),
    capacity: opt(ctx, o.get('capacity'), (n) => r.int(n, o.at('capacity'), Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'an integer')),
    services: parseEndpointPorts(ctx, o.get('services'), o.at('services')),
  };
  const w = normalized(ctx, o, normalizeWorkload(draft));
  return r.errors.length === before ? w : undefined;
}

function parseAppTunnel(ctx: ParseCtx, node: YNode, path: string): WorkloadDraft['applicationTunnel'] {
  if (ctx.r.isNull(node)) return null;
  const o = ctx.r.object(node, path, ['protocol', 'port']);
  if (!o) return undefined;
  const protocol = opt(ctx, o.get('protocol'), (n) => ctx.r.oneOf(n, o.at('protocol'), ['NONE', 'PROXY'] as const));
  const port = ctx.r.isNull(o.get('port')) ? null : ctx.r.int(o.get('port'), o.at('port'), 1, 65535, 'a port');
  return { protocol, port };
}

function parseLocality(ctx: ParseCtx, node: YNode, path: string): WorkloadDraft['locality'] {
  if (ctx.r.isNull(node)) return undefined;
  const o = ctx.r.object(node, path, ['region', 'zone', 'subzone']);
  if (!o) return undefined;
  return { region: ctx.r.string(o.get('region'), o.at('region')), zone: ctx.r.string(o.get('zone'), o.at('zone')), subzone: ctx.r.string(o.get('subzone'), o.at('subzone')) };
}

/** `services: {"ns/hostname": {servicePort: targetPort}}`: how endpoints are conveyed. */
function parseEndpointPorts(ctx: ParseCtx, node: YNode, path: string): Record<string, Record<number, number>> {
  const out: Record<string, Record<number, number>> = {};
  for (const e of ctx.r.entries(node, path, 'a map of "namespace/hostname" to {servicePort: targetPort}')) {
    const p = childPath(path, e.key);
    const ports: Record<number, number> = {};
    for (const pe of ctx.r.entries(e.value, p, 'a map of servicePort to targetPort')) {
      const pp = childPath(p, pe.key);
      const sp = ctx.r.portKey(pe.key, pe.keyNode, pp);
      const tp = ctx.r.int(pe.value, pp, 1, 65535, 'a target port');
      if (sp !== undefined && tp !== undefined) ports[sp] = tp;
    }
    out[e.key] = ports;
  }
  return out;
}
