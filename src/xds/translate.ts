import { canonicalIp } from '../util/ip';
import { normalizePolicy, normalizeService, normalizeWorkload, type GatewayDraft, type MatchDraft, type Normalized } from '../state/normalize';
import type { Authorization, Cidr, Scope, Service, StringMatch, Workload } from '../state/types';
import type { PbAuthorization, PbCidr, PbGatewayAddress, PbMatch, PbService, PbStringMatch, PbWorkload } from './proto';

/**
 * istiod's protobuf resources → the domain model, pure. This file checks the wire format
 * (address byte lengths, enum numbers, map keys) and maps protobuf fields onto a draft;
 * defaults and semantic validation come from src/state/normalize.ts, shared with the local
 * file, so both sources accept and reject the same things. Every rejection names the
 * field and the value, so the NACK's error_detail tells the control plane what is wrong.
 */
export class TranslateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TranslateError';
  }
}

const WORKLOAD_TYPES = ['deployment', 'cronjob', 'pod', 'job'] as const;
const SCOPES: readonly (Scope | null)[] = [null, 'Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network'];
const LB_MODES = ['Standard', 'Strict', 'Failover', 'Passthrough'] as const;
const IP_FAMILIES = ['Automatic', 'IPv4', 'IPv6', 'Dual'] as const;

/** 4 or 16 bytes → canonical IP text. */
export function bytesToIp(b: Uint8Array, field: string): string {
  let text: string;
  if (b.length === 4) text = `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  else if (b.length === 16) {
    const g: string[] = [];
    for (let i = 0; i < 16; i += 2) g.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16));
    text = g.join(':');
  } else throw new TranslateError(`${field}: ${b.length} bytes is not an IP address (expected 4 or 16)`);
  return canonicalIp(text) as string;
}

function enumAt<T>(values: readonly T[], n: number, field: string): T {
  const v = values[n];
  if (v === undefined) throw new TranslateError(`${field}: unknown enum value ${n}`);
  return v;
}

function result<T>(kind: string, r: Normalized<T>): T {
  if (r.ok) return r.value;
  throw new TranslateError(r.errors.map((e) => `${kind}.${e.field}: ${e.message}`).join('; '));
}

/** Port 0 is undialable and istiod always sets the port: absent means the HBONE default. */
function gateway(g: PbGatewayAddress | null, field: string): GatewayDraft | null {
  if (!g) return null;
  const port = g.hbone_mtls_port === 0 ? {} : { hboneMtlsPort: g.hbone_mtls_port };
  if (g.hostname) return { kind: 'hostname', namespace: g.hostname.namespace, hostname: g.hostname.hostname, ...port };
  if (g.address) return { kind: 'address', network: g.address.network, ip: bytesToIp(g.address.address, `${field}.address`), ...port };
  throw new TranslateError(`${field}: neither hostname nor address is set`);
}

function portMap(list: readonly { service_port: number; target_port: number }[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const p of list) out[p.service_port] = p.target_port;
  return out;
}

export function translateWorkload(w: PbWorkload): Workload {
  if (w.tunnel_protocol === 2) throw new TranslateError('workload.tunnel_protocol: LEGACY_ISTIO_MTLS is not supported');
  const services: Record<string, Record<number, number>> = {};
  for (const [key, list] of Object.entries(w.services)) services[key] = portMap(list.ports);
  const at = w.application_tunnel;
  return result(
    'workload',
    normalizeWorkload({
      uid: w.uid,
      name: w.name,
      namespace: w.namespace,
      serviceAccount: w.service_account,
      trustDomain: w.trust_domain,
      workloadIps: w.addresses.map((a, i) => bytesToIp(a, `workload.addresses[${i}]`)),
      hostname: w.hostname,
      network: w.network,
      protocol: enumAt(['TCP', 'HBONE'] as const, w.tunnel_protocol, 'workload.tunnel_protocol'),
      networkMode: enumAt(['Standard', 'HostNetwork'] as const, w.network_mode, 'workload.network_mode'),
      node: w.node,
      waypoint: gateway(w.waypoint, 'workload.waypoint'),
      networkGateway: gateway(w.network_gateway, 'workload.network_gateway'),
      applicationTunnel: at ? { protocol: enumAt(['NONE', 'PROXY'] as const, at.protocol, 'workload.application_tunnel.protocol'), port: at.port === 0 ? null : at.port } : null,
      authorizationPolicies: [...w.authorization_policies],
      status: enumAt(['Healthy', 'Unhealthy'] as const, w.status, 'workload.status'),
      clusterId: w.cluster_id,
      ...(w.locality ? { locality: { region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone } } : {}),
      canonicalName: w.canonical_name,
      canonicalRevision: w.canonical_revision,
      workloadName: w.workload_name,
      workloadType: enumAt(WORKLOAD_TYPES, w.workload_type, 'workload.workload_type'),
      nativeTunnel: w.native_tunnel,
      ...(w.capacity ? { capacity: w.capacity.value } : {}),
      services,
    }),
  );
}

export function translateService(s: PbService): Service {
  const lb = s.load_balancing;
  return result(
    'service',
    normalizeService({
      name: s.name,
      namespace: s.namespace,
      hostname: s.hostname,
      vips: s.addresses.map((a, i) => ({ network: a.network, ip: bytesToIp(a.address, `service.addresses[${i}]`), ...(a.length === null || a.length === undefined ? {} : { prefixLen: a.length }) })),
      ports: portMap(s.ports),
      subjectAltNames: [...s.subject_alt_names],
      waypoint: gateway(s.waypoint, 'service.waypoint'),
      weightedWaypoints: s.weighted_waypoints.map((ww, i) => {
        const destination = gateway(ww.destination, `service.weighted_waypoints[${i}].destination`);
        if (!destination) throw new TranslateError(`service.weighted_waypoints[${i}].destination: required`);
        return { destination, weight: ww.weight };
      }),
      loadBalancer: lb
        ? {
            routingPreferences: lb.routing_preference.map((n, i) => {
              const sc = enumAt(SCOPES, n, `service.load_balancing.routing_preference[${i}]`);
              if (sc === null) throw new TranslateError(`service.load_balancing.routing_preference[${i}]: UNSPECIFIED_SCOPE`);
              return sc;
            }),
            mode: enumAt(LB_MODES, lb.mode, 'service.load_balancing.mode'),
            healthPolicy: enumAt(['OnlyHealthy', 'AllowAll'] as const, lb.health_policy, 'service.load_balancing.health_policy'),
          }
        : null,
      ipFamilies: enumAt(IP_FAMILIES, s.ip_families, 'service.ip_families'),
      canonical: s.canonical,
      visibility: enumAt(['Public', 'Namespace'] as const, s.visibility, 'service.visibility'),
    }),
  );
}

function stringMatch(m: PbStringMatch, field: string): StringMatch {
  switch (m.match_type) {
    case 'exact':
      return { kind: 'Exact', value: m.exact as string };
    case 'prefix':
      return { kind: 'Prefix', value: m.prefix as string };
    case 'suffix':
      return { kind: 'Suffix', value: m.suffix as string };
    case 'presence':
      return { kind: 'Presence' };
    default:
      throw new TranslateError(`${field}: no match type set`);
  }
}

function match(m: PbMatch, f: string): MatchDraft {
  const sm = (l: PbStringMatch[], n: string): StringMatch[] => l.map((x, i) => stringMatch(x, `${f}.${n}[${i}]`));
  const sa = (l: { namespace: string; serviceAccount: string }[]): { namespace: string; serviceAccount: string }[] => l.map((x) => ({ namespace: x.namespace, serviceAccount: x.serviceAccount }));
  const ips = (l: PbCidr[], n: string): Cidr[] => l.map((x, i) => ({ ip: bytesToIp(x.address, `${f}.${n}[${i}]`), prefixLen: x.length }));
  return {
    namespaces: sm(m.namespaces, 'namespaces'),
    notNamespaces: sm(m.not_namespaces, 'not_namespaces'),
    principals: sm(m.principals, 'principals'),
    notPrincipals: sm(m.not_principals, 'not_principals'),
    serviceAccounts: sa(m.service_accounts),
    notServiceAccounts: sa(m.not_service_accounts),
    sourceIps: ips(m.source_ips, 'source_ips'),
    notSourceIps: ips(m.not_source_ips, 'not_source_ips'),
    destinationIps: ips(m.destination_ips, 'destination_ips'),
    notDestinationIps: ips(m.not_destination_ips, 'not_destination_ips'),
    destinationPorts: [...m.destination_ports],
    notDestinationPorts: [...m.not_destination_ports],
  };
}

export function translateAuthorization(a: PbAuthorization): Authorization {
  return result(
    'authorization',
    normalizePolicy({
      name: a.name,
      namespace: a.namespace,
      scope: enumAt(['Global', 'Namespace', 'WorkloadSelector'] as const, a.scope, 'authorization.scope'),
      action: enumAt(['Allow', 'Deny'] as const, a.action, 'authorization.action'),
      dryRun: a.dry_run,
      rules: a.rules.map((r, ri) => r.clauses.map((c, ci) => c.matches.map((m, mi) => match(m, `authorization.rules[${ri}].clauses[${ci}].matches[${mi}]`)))),
    }),
  );
}
