import { canonicalIp } from '../util/ip';
import type { Authorization, Cidr, GatewayAddress, Match, Rule, Scope, Service, ServiceAccountMatch, StringMatch, VipAddress, Workload } from '../state/types';
import type { PbAuthorization, PbCidr, PbGatewayAddress, PbMatch, PbNetworkAddress, PbService, PbStringMatch, PbWorkload } from './proto';

/**
 * istiod's protobuf resources → the domain model, pure. Every rejection names the field
 * and the value, so the NACK's error_detail tells the control plane exactly what is wrong.
 * Defaults follow ztunnel's xDS conversion (empty trust domain → cluster.local, empty
 * service account → default, empty cluster → Kubernetes, absent capacity → 1).
 */
export class TranslateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TranslateError';
  }
}

const DEFAULT_HBONE_PORT = 15008;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
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

function identitySegment(value: string, field: string, re: RegExp): void {
  if (!re.test(value)) throw new TranslateError(`${field}: ${JSON.stringify(value)} is not valid in a SPIFFE identity`);
}

function gateway(g: PbGatewayAddress | null, field: string): GatewayAddress | null {
  if (!g) return null;
  // istiod always sets the port; 0 would be undialable, so it means the HBONE default.
  const hboneMtlsPort = g.hbone_mtls_port || DEFAULT_HBONE_PORT;
  if (hboneMtlsPort > 65535) throw new TranslateError(`${field}.hbone_mtls_port: ${hboneMtlsPort} is not a port`);
  if (g.hostname) {
    if (!g.hostname.namespace || !g.hostname.hostname) throw new TranslateError(`${field}.hostname: namespace and hostname are required`);
    return { kind: 'hostname', namespace: g.hostname.namespace, hostname: g.hostname.hostname, hboneMtlsPort };
  }
  if (g.address) return { kind: 'address', network: g.address.network, ip: bytesToIp(g.address.address, `${field}.address`), hboneMtlsPort };
  throw new TranslateError(`${field}: neither hostname nor address is set`);
}

export function translateWorkload(w: PbWorkload): Workload {
  if (!w.uid) throw new TranslateError('workload.uid: required');
  if (!w.name) throw new TranslateError('workload.name: required');
  if (!w.namespace) throw new TranslateError('workload.namespace: required');
  const trustDomain = w.trust_domain || 'cluster.local';
  const serviceAccount = w.service_account || 'default';
  identitySegment(w.namespace, 'workload.namespace', SEGMENT);
  identitySegment(serviceAccount, 'workload.service_account', SEGMENT);
  identitySegment(trustDomain, 'workload.trust_domain', TRUST_DOMAIN);
  if (w.tunnel_protocol === 2) throw new TranslateError('workload.tunnel_protocol: LEGACY_ISTIO_MTLS is not supported');
  const protocol = enumAt(['TCP', 'HBONE'] as const, w.tunnel_protocol, 'workload.tunnel_protocol');
  const services: Record<string, Record<number, number>> = {};
  for (const key of Object.keys(w.services)) {
    const slash = key.indexOf('/');
    if (slash <= 0 || slash === key.length - 1) throw new TranslateError(`workload.services: key ${JSON.stringify(key)} is not "<namespace>/<hostname>"`);
    const ports: Record<number, number> = {};
    for (const p of (w.services[key] as { ports: { service_port: number; target_port: number }[] }).ports) {
      if (p.service_port < 1 || p.service_port > 65535 || p.target_port > 65535) throw new TranslateError(`workload.services[${key}]: port ${p.service_port}→${p.target_port} is out of range`);
      ports[p.service_port] = p.target_port;
    }
    services[key] = ports;
  }
  const at = w.application_tunnel;
  return {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    serviceAccount,
    trustDomain,
    workloadIps: w.addresses.map((a, i) => bytesToIp(a, `workload.addresses[${i}]`)),
    hostname: w.hostname,
    network: w.network,
    protocol,
    networkMode: enumAt(['Standard', 'HostNetwork'] as const, w.network_mode, 'workload.network_mode'),
    node: w.node,
    waypoint: gateway(w.waypoint, 'workload.waypoint'),
    networkGateway: gateway(w.network_gateway, 'workload.network_gateway'),
    applicationTunnel: at ? { protocol: enumAt(['NONE', 'PROXY'] as const, at.protocol, 'workload.application_tunnel.protocol'), port: at.port === 0 ? null : at.port } : null,
    authorizationPolicies: [...w.authorization_policies],
    status: enumAt(['Healthy', 'Unhealthy'] as const, w.status, 'workload.status'),
    clusterId: w.cluster_id || 'Kubernetes',
    locality: w.locality ? { region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone } : { region: '', zone: '', subzone: '' },
    canonicalName: w.canonical_name,
    canonicalRevision: w.canonical_revision,
    workloadName: w.workload_name,
    workloadType: enumAt(WORKLOAD_TYPES, w.workload_type, 'workload.workload_type'),
    nativeTunnel: w.native_tunnel,
    capacity: w.capacity ? w.capacity.value : 1,
    services,
  };
}

function vip(a: PbNetworkAddress, i: number): VipAddress {
  const ip = bytesToIp(a.address, `service.addresses[${i}]`);
  const full = ip.includes(':') ? 128 : 32;
  const prefixLen = a.length === null || a.length === undefined ? full : a.length;
  if (prefixLen > full) throw new TranslateError(`service.addresses[${i}].length: ${prefixLen} is longer than the address`);
  return { network: a.network, ip, prefixLen };
}

export function translateService(s: PbService): Service {
  if (!s.namespace) throw new TranslateError('service.namespace: required');
  if (!s.hostname) throw new TranslateError('service.hostname: required');
  const ports: Record<number, number> = {};
  for (const p of s.ports) {
    if (p.service_port < 1 || p.service_port > 65535 || p.target_port > 65535) throw new TranslateError(`service.ports: ${p.service_port}→${p.target_port} is out of range`);
    ports[p.service_port] = p.target_port;
  }
  const lb = s.load_balancing;
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.addresses.map(vip),
    ports,
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
  };
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

function cidr(c: PbCidr, field: string): Cidr {
  const ip = bytesToIp(c.address, field);
  const full = ip.includes(':') ? 128 : 32;
  if (c.length > full) throw new TranslateError(`${field}.length: ${c.length} is longer than the address`);
  return { ip, prefixLen: c.length };
}

function ports(list: readonly number[], field: string): number[] {
  for (const p of list) if (p < 1 || p > 65535) throw new TranslateError(`${field}: ${p} is not a port`);
  return [...list];
}

function match(m: PbMatch, f: string): Match {
  const sm = (l: PbStringMatch[], n: string): StringMatch[] => l.map((x, i) => stringMatch(x, `${f}.${n}[${i}]`));
  const sa = (l: { namespace: string; serviceAccount: string }[]): ServiceAccountMatch[] => l.map((x) => ({ namespace: x.namespace, serviceAccount: x.serviceAccount }));
  const ips = (l: PbCidr[], n: string): Cidr[] => l.map((x, i) => cidr(x, `${f}.${n}[${i}]`));
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
    destinationPorts: ports(m.destination_ports, `${f}.destination_ports`),
    notDestinationPorts: ports(m.not_destination_ports, `${f}.not_destination_ports`),
  };
}

export function translateAuthorization(a: PbAuthorization): Authorization {
  if (!a.name) throw new TranslateError('authorization.name: required');
  if (!a.namespace) throw new TranslateError('authorization.namespace: required');
  const rules: Rule[] = a.rules.map((r, ri) => r.clauses.map((c, ci) => c.matches.map((m, mi) => match(m, `authorization.rules[${ri}].clauses[${ci}].matches[${mi}]`))));
  return {
    name: a.name,
    namespace: a.namespace,
    scope: enumAt(['Global', 'Namespace', 'WorkloadSelector'] as const, a.scope, 'authorization.scope'),
    action: enumAt(['Allow', 'Deny'] as const, a.action, 'authorization.action'),
    dryRun: a.dry_run,
    rules,
  };
}
