import type { Workload } from '../types';
import { parseGateway, parseIpValue, type ParseCtx } from './common';
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
 * Returns undefined when any field is bad (the errors are in ctx.r); defaults follow the
 * xDS conversion (serviceAccount "default", trustDomain "cluster.local", capacity 1).
 */
export function parseWorkload(ctx: ParseCtx, node: YNode, path: string): Workload | undefined {
  const r = ctx.r;
  const o = r.object(node, path, WORKLOAD_FIELDS);
  if (!o) return undefined;
  const before = r.errors.length;
  const owner = { owner: node };
  const uid = r.string(o.get('uid'), o.at('uid'), { required: true, ...owner });
  const name = r.string(o.get('name'), o.at('name'), { required: true, ...owner });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { required: true, ...owner });
  const serviceAccount = r.string(o.get('serviceAccount'), o.at('serviceAccount'), { def: 'default' }) || 'default';
  const trustDomain = r.string(o.get('trustDomain'), o.at('trustDomain'), { def: 'cluster.local' }) || 'cluster.local';
  // These three form the SPIFFE identity; reject what could never be a valid certificate SAN.
  identityPart(ctx, o.get('namespace'), o.at('namespace'), namespace, SEGMENT, 'namespace');
  identityPart(ctx, o.get('serviceAccount'), o.at('serviceAccount'), serviceAccount, SEGMENT, 'service account');
  identityPart(ctx, o.get('trustDomain'), o.at('trustDomain'), trustDomain, TRUST_DOMAIN, 'trust domain');
  const workloadIps = r.list(o.get('workloadIps'), o.at('workloadIps'), 'IP addresses', (n, p) => parseIpValue(ctx, n, p));
  const protocol = r.oneOf(o.get('protocol'), o.at('protocol'), ['HBONE', 'TCP'] as const, 'TCP');
  const networkMode = r.oneOf(o.get('networkMode'), o.at('networkMode'), ['Standard', 'HostNetwork'] as const, 'Standard');
  const network = r.string(o.get('network'), o.at('network'));
  const nodeName = r.string(o.get('node'), o.at('node'));
  const hostname = r.string(o.get('hostname'), o.at('hostname'));
  const waypoint = r.isNull(o.get('waypoint')) ? null : parseGateway(ctx, o.get('waypoint'), o.at('waypoint'), `waypoint of workload ${uid ?? '?'}`)?.gw;
  const networkGateway = r.isNull(o.get('networkGateway'))
    ? null
    : parseGateway(ctx, o.get('networkGateway'), o.at('networkGateway'), `network gateway of workload ${uid ?? '?'}`)?.gw;
  const applicationTunnel = parseAppTunnel(ctx, o.get('applicationTunnel'), o.at('applicationTunnel'));
  const authorizationPolicies = r.list(o.get('authorizationPolicies'), o.at('authorizationPolicies'), '"namespace/name" policy keys', (n, p) => {
    const s = r.string(n, p, { required: true });
    if (s === undefined) return undefined;
    if (!/^[^/]+\/[^/]+$/.test(s)) {
      r.error(n, p, `${JSON.stringify(s)} is not a policy key; expected "<namespace>/<name>"`);
      return undefined;
    }
    ctx.refs.push({ kind: 'policy', key: s, path: p, node: n, what: `authorizationPolicies of workload ${uid ?? '?'}` });
    return s;
  });
  const status = r.oneOf(o.get('status'), o.at('status'), ['Healthy', 'Unhealthy'] as const, 'Healthy');
  const clusterId = r.string(o.get('clusterId'), o.at('clusterId'), { def: 'Kubernetes' }) || 'Kubernetes';
  const locality = parseLocality(ctx, o.get('locality'), o.at('locality'));
  const canonicalName = r.string(o.get('canonicalName'), o.at('canonicalName'));
  const canonicalRevision = r.string(o.get('canonicalRevision'), o.at('canonicalRevision'));
  const workloadName = r.string(o.get('workloadName'), o.at('workloadName'));
  const workloadType = r.oneOf(o.get('workloadType'), o.at('workloadType'), WORKLOAD_TYPES, 'deployment');
  const nativeTunnel = r.bool(o.get('nativeTunnel'), o.at('nativeTunnel'), false);
  const capacity = r.int(o.get('capacity'), o.at('capacity'), 0, 0xffffffff, 'a capacity', 1);
  const services = parseEndpointPorts(ctx, o.get('services'), o.at('services'));
  if (r.errors.length !== before) return undefined;
  return {
    uid: uid!,
    name: name!,
    namespace: namespace!,
    serviceAccount,
    trustDomain,
    workloadIps,
    hostname: hostname!,
    network: network!,
    protocol: protocol!,
    networkMode: networkMode!,
    node: nodeName!,
    waypoint: waypoint ?? null,
    networkGateway: networkGateway ?? null,
    applicationTunnel: applicationTunnel ?? null,
    authorizationPolicies,
    status: status!,
    clusterId,
    locality: locality!,
    canonicalName: canonicalName!,
    canonicalRevision: canonicalRevision!,
    workloadName: workloadName!,
    workloadType: workloadType!,
    nativeTunnel: nativeTunnel!,
    capacity: capacity!,
    services,
  };
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

function identityPart(ctx: ParseCtx, node: YNode, path: string, value: string | undefined, re: RegExp, what: string): void {
  if (value === undefined || value === '' || re.test(value)) return;
  const allowed = re === TRUST_DOMAIN ? "lower-case letters, digits, '.', '_' or '-'" : "letters, digits, '.', '_' or '-'";
  ctx.r.error(node, path, `${JSON.stringify(value)} is not a valid ${what} for a SPIFFE identity (expected ${allowed})`);
}

function parseAppTunnel(ctx: ParseCtx, node: YNode, path: string): Workload['applicationTunnel'] | undefined {
  if (ctx.r.isNull(node)) return null;
  const o = ctx.r.object(node, path, ['protocol', 'port']);
  if (!o) return undefined;
  const protocol = ctx.r.oneOf(o.get('protocol'), o.at('protocol'), ['NONE', 'PROXY'] as const, 'NONE');
  const port = ctx.r.isNull(o.get('port')) ? null : ctx.r.int(o.get('port'), o.at('port'), 1, 65535, 'a port');
  if (protocol === undefined || port === undefined) return undefined;
  return { protocol, port };
}

function parseLocality(ctx: ParseCtx, node: YNode, path: string): Workload['locality'] | undefined {
  if (ctx.r.isNull(node)) return { region: '', zone: '', subzone: '' };
  const o = ctx.r.object(node, path, ['region', 'zone', 'subzone']);
  if (!o) return undefined;
  const region = ctx.r.string(o.get('region'), o.at('region'));
  const zone = ctx.r.string(o.get('zone'), o.at('zone'));
  const subzone = ctx.r.string(o.get('subzone'), o.at('subzone'));
  if (region === undefined || zone === undefined || subzone === undefined) return undefined;
  return { region, zone, subzone };
}

/** `services: {"ns/hostname": {servicePort: targetPort}}`: how endpoints are conveyed. */
function parseEndpointPorts(ctx: ParseCtx, node: YNode, path: string): Record<string, Record<number, number>> {
  const out: Record<string, Record<number, number>> = {};
  for (const e of ctx.r.entries(node, path, 'a map of "namespace/hostname" to {servicePort: targetPort}')) {
    const p = childPath(path, e.key);
    if (!/^[^/]+\/[^/]+$/.test(e.key)) {
      ctx.r.error(e.keyNode, p, `${JSON.stringify(e.key)} is not a service key; expected "<namespace>/<hostname>"`);
      continue;
    }
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
