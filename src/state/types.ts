/**
 * The workload domain model (not protobuf types), mirroring ztunnel's Workload, Service and
 * Authorization. Everything is plain readonly data so it can be shown
 * in /config_dump as is. Produced only by the state updater.
 */

export interface NetworkAddress {
  readonly network: string;
  readonly ip: string;
}

/** A Service VIP; prefixLen below the full length makes it a CIDR VIP. */
export interface VipAddress extends NetworkAddress {
  readonly prefixLen: number;
}

export type GatewayAddress =
  | { readonly kind: 'address'; readonly network: string; readonly ip: string; readonly hboneMtlsPort: number }
  | { readonly kind: 'hostname'; readonly namespace: string; readonly hostname: string; readonly hboneMtlsPort: number };

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

export type TunnelProtocol = 'HBONE' | 'TCP';
export type WorkloadStatus = 'Healthy' | 'Unhealthy';

export interface Workload {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  readonly workloadIps: readonly string[];
  readonly hostname: string;
  readonly network: string;
  readonly protocol: TunnelProtocol;
  readonly networkMode: 'Standard' | 'HostNetwork';
  readonly node: string;
  readonly waypoint: GatewayAddress | null;
  readonly networkGateway: GatewayAddress | null;
  readonly applicationTunnel: { readonly protocol: 'NONE' | 'PROXY'; readonly port: number | null } | null;
  readonly authorizationPolicies: readonly string[];
  readonly status: WorkloadStatus;
  readonly clusterId: string;
  readonly locality: Locality;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly workloadName: string;
  readonly workloadType: 'deployment' | 'cronjob' | 'pod' | 'job';
  readonly nativeTunnel: boolean;
  readonly capacity: number;
  /** Endpoints: `"ns/hostname"` → servicePort → targetPort. */
  readonly services: Readonly<Record<string, Readonly<Record<number, number>>>>;
}

export type Scope = 'Region' | 'Zone' | 'Subzone' | 'Node' | 'Cluster' | 'Network';
export type LoadBalancingMode = 'Standard' | 'Strict' | 'Failover' | 'Passthrough';

export interface Service {
  readonly name: string;
  readonly namespace: string;
  readonly hostname: string;
  readonly vips: readonly VipAddress[];
  /** servicePort → targetPort (0 = same as the endpoint's own mapping). */
  readonly ports: Readonly<Record<number, number>>;
  readonly subjectAltNames: readonly string[];
  readonly waypoint: GatewayAddress | null;
  readonly weightedWaypoints: readonly { readonly destination: GatewayAddress; readonly weight: number }[];
  readonly loadBalancer: { readonly routingPreferences: readonly Scope[]; readonly mode: LoadBalancingMode; readonly healthPolicy: 'OnlyHealthy' | 'AllowAll' } | null;
  readonly ipFamilies: 'Automatic' | 'IPv4' | 'IPv6' | 'Dual';
  readonly canonical: boolean;
  readonly visibility: 'Public' | 'Namespace';
}

export type StringMatch = { readonly kind: 'Exact' | 'Prefix' | 'Suffix'; readonly value: string } | { readonly kind: 'Presence' };

export interface Cidr {
  readonly ip: string;
  readonly prefixLen: number;
}

export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Within a Match every populated field is ANDed; an entirely empty Match never matches. */
export interface Match {
  readonly namespaces: readonly StringMatch[];
  readonly notNamespaces: readonly StringMatch[];
  readonly principals: readonly StringMatch[];
  readonly notPrincipals: readonly StringMatch[];
  readonly serviceAccounts: readonly ServiceAccountMatch[];
  readonly notServiceAccounts: readonly ServiceAccountMatch[];
  readonly sourceIps: readonly Cidr[];
  readonly notSourceIps: readonly Cidr[];
  readonly destinationIps: readonly Cidr[];
  readonly notDestinationIps: readonly Cidr[];
  readonly destinationPorts: readonly number[];
  readonly notDestinationPorts: readonly number[];
}

/** rules (ORed) → clauses (ANDed) → matches (ORed). */
export type Clause = readonly Match[];
export type Rule = readonly Clause[];

export interface Authorization {
  readonly name: string;
  readonly namespace: string;
  readonly scope: 'Global' | 'Namespace' | 'WorkloadSelector';
  readonly action: 'Allow' | 'Deny';
  readonly dryRun: boolean;
  readonly rules: readonly Rule[];
}

/** `namespace/name`, the key policies are referenced by. */
export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

/** `namespace/hostname`, the key services are referenced by. */
export function serviceKey(s: { namespace: string; hostname: string }): string {
  return `${s.namespace}/${s.hostname}`;
}
