import { ipBytes } from '../util/ip';
import type { Authorization, Cidr, GatewayAddress, Match, Service, StringMatch, Workload } from '../state/types';
import type { PbAddress, PbAuthorization, PbCidr, PbGatewayAddress, PbMatch, PbPort, PbService, PbStringMatch, PbWorkload } from './proto';

/**
 * The domain model → istiod's protobuf shapes: what the dev control plane serves, so a
 * ztunnel-format file becomes the same resources istiod would send. Pure; the inverse of
 * translate.ts for every field the domain model carries.
 */

const WORKLOAD_TYPES = ['deployment', 'cronjob', 'pod', 'job'] as const;
const SCOPES = ['', 'Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network'] as const;
const LB_MODES = ['Standard', 'Strict', 'Failover', 'Passthrough'] as const;
const IP_FAMILIES = ['Automatic', 'IPv4', 'IPv6', 'Dual'] as const;

function ip(s: string): Uint8Array {
  const b = ipBytes(s);
  if (!b) throw new Error(`${JSON.stringify(s)} is not an IP address`);
  return b;
}

function gateway(g: GatewayAddress | null): PbGatewayAddress | null {
  if (!g) return null;
  if (g.kind === 'hostname') return { hostname: { namespace: g.namespace, hostname: g.hostname }, hbone_mtls_port: g.hboneMtlsPort };
  return { address: { network: g.network, address: ip(g.ip) }, hbone_mtls_port: g.hboneMtlsPort };
}

function portList(m: Readonly<Record<number, number>>): PbPort[] {
  return Object.entries(m).map(([sp, tp]) => ({ service_port: Number(sp), target_port: tp }));
}

export function encodeWorkload(w: Workload): PbWorkload {
  const services: PbWorkload['services'] = {};
  for (const [k, m] of Object.entries(w.services)) services[k] = { ports: portList(m) };
  return {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    addresses: w.workloadIps.map(ip),
    hostname: w.hostname,
    network: w.network,
    tunnel_protocol: w.protocol === 'HBONE' ? 1 : 0,
    trust_domain: w.trustDomain,
    service_account: w.serviceAccount,
    waypoint: gateway(w.waypoint),
    network_gateway: gateway(w.networkGateway),
    node: w.node,
    canonical_name: w.canonicalName,
    canonical_revision: w.canonicalRevision,
    workload_type: WORKLOAD_TYPES.indexOf(w.workloadType),
    workload_name: w.workloadName,
    native_tunnel: w.nativeTunnel,
    application_tunnel: w.applicationTunnel ? { protocol: w.applicationTunnel.protocol === 'PROXY' ? 1 : 0, port: w.applicationTunnel.port ?? 0 } : null,
    services,
    authorization_policies: [...w.authorizationPolicies],
    status: w.status === 'Unhealthy' ? 1 : 0,
    cluster_id: w.clusterId,
    locality: w.locality.region || w.locality.zone || w.locality.subzone ? { ...w.locality } : null,
    network_mode: w.networkMode === 'HostNetwork' ? 1 : 0,
    capacity: { value: w.capacity },
  };
}

export function encodeService(s: Service): PbService {
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    addresses: s.vips.map((v) => {
      const full = v.ip.includes(':') ? 128 : 32;
      return v.prefixLen < full ? { network: v.network, address: ip(v.ip), length: v.prefixLen } : { network: v.network, address: ip(v.ip) };
    }),
    ports: portList(s.ports),
    subject_alt_names: [...s.subjectAltNames],
    waypoint: gateway(s.waypoint),
    load_balancing: s.loadBalancer
      ? {
          routing_preference: s.loadBalancer.routingPreferences.map((p) => SCOPES.indexOf(p)),
          mode: LB_MODES.indexOf(s.loadBalancer.mode),
          health_policy: s.loadBalancer.healthPolicy === 'AllowAll' ? 1 : 0,
        }
      : null,
    ip_families: IP_FAMILIES.indexOf(s.ipFamilies),
    canonical: s.canonical,
    weighted_waypoints: s.weightedWaypoints.map((w) => ({ destination: gateway(w.destination), weight: w.weight })),
    visibility: s.visibility === 'Namespace' ? 1 : 0,
  };
}

function stringMatch(m: StringMatch): PbStringMatch {
  switch (m.kind) {
    case 'Exact':
      return { exact: m.value };
    case 'Prefix':
      return { prefix: m.value };
    case 'Suffix':
      return { suffix: m.value };
    case 'Presence':
      return { presence: {} };
  }
}

function cidr(c: Cidr): PbCidr {
  return { address: ip(c.ip), length: c.prefixLen };
}

function match(m: Match): PbMatch {
  return {
    namespaces: m.namespaces.map(stringMatch),
    not_namespaces: m.notNamespaces.map(stringMatch),
    principals: m.principals.map(stringMatch),
    not_principals: m.notPrincipals.map(stringMatch),
    service_accounts: m.serviceAccounts.map((s) => ({ ...s })),
    not_service_accounts: m.notServiceAccounts.map((s) => ({ ...s })),
    source_ips: m.sourceIps.map(cidr),
    not_source_ips: m.notSourceIps.map(cidr),
    destination_ips: m.destinationIps.map(cidr),
    not_destination_ips: m.notDestinationIps.map(cidr),
    destination_ports: [...m.destinationPorts],
    not_destination_ports: [...m.notDestinationPorts],
  };
}

export function encodeAuthorization(a: Authorization): PbAuthorization {
  return {
    name: a.name,
    namespace: a.namespace,
    scope: a.scope === 'Global' ? 0 : a.scope === 'Namespace' ? 1 : 2,
    action: a.action === 'Deny' ? 1 : 0,
    rules: a.rules.map((r) => ({ clauses: r.map((c) => ({ matches: c.map(match) })) })),
    dry_run: a.dryRun,
  };
}

export function workloadAddress(w: Workload): PbAddress {
  return { workload: encodeWorkload(w) };
}

export function serviceAddress(s: Service): PbAddress {
  return { service: encodeService(s) };
}
