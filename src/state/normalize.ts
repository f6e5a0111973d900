import type { Authorization, Cidr, GatewayAddress, Locality, Match, Service, VipAddress, Workload } from './types';
import { canonicalIp } from '../util/ip';

/**
 * The one place where a resource from any source (the YAML file, an xDS push) gets its
 * defaults and its semantic validation. Sources parse their own wire format into a
 * partially-filled domain object (a Draft: any field may be absent) and call normalize*;
 * the result is either the complete domain object the state stores, or every problem found,
 * each naming the field it concerns. Pure: no I/O, never throws on bad input.
 *
 * Format checks stay with each format (YAML: a string where a list is expected, an unknown
 * key, an enum spelled wrong); what a value MEANS is checked here, so both sources accept
 * and reject the same things and fill the same defaults.
 */

/** A field path inside the resource (`workloadIps[1]`, `services["ns/h"]`), as segments and as text. */
export interface FieldError {
  readonly path: readonly (string | number)[];
  readonly field: string;
  readonly message: string;
}

export type Normalized<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly FieldError[] };

/** Defaults shared with the xDS conversion: what an unset field means. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_SERVICE_ACCOUNT = 'default';
export const DEFAULT_CLUSTER_ID = 'Kubernetes';
export const DEFAULT_CAPACITY = 1;
export const DEFAULT_HBONE_PORT = 15008;

/** Any field may be absent; required ones are reported by name when they are. */
type Draft<T> = { readonly [K in keyof T]?: T[K] };

export type GatewayDraft =
  | { readonly kind: 'address'; readonly network?: string; readonly ip: string; readonly hboneMtlsPort?: number }
  | { readonly kind: 'hostname'; readonly namespace: string; readonly hostname: string; readonly hboneMtlsPort?: number };

export type WorkloadDraft = Draft<Omit<Workload, 'locality' | 'waypoint' | 'networkGateway' | 'applicationTunnel'>> & {
  readonly locality?: Partial<Locality>;
  readonly waypoint?: GatewayDraft | null;
  readonly networkGateway?: GatewayDraft | null;
  readonly applicationTunnel?: { readonly protocol?: 'NONE' | 'PROXY'; readonly port?: number | null } | null;
};

export interface VipDraft {
  readonly network?: string;
  readonly ip: string;
  /** Absent: the full length (a single address). Below it: a CIDR VIP. */
  readonly prefixLen?: number;
}

export type ServiceDraft = Draft<Omit<Service, 'vips' | 'waypoint' | 'weightedWaypoints' | 'loadBalancer'>> & {
  readonly vips?: readonly VipDraft[];
  readonly waypoint?: GatewayDraft | null;
  readonly weightedWaypoints?: readonly { readonly destination: GatewayDraft; readonly weight?: number }[];
  readonly loadBalancer?: Partial<NonNullable<Service['loadBalancer']>> | null;
};

export type MatchDraft = Draft<Match>;

export type PolicyDraft = Draft<Omit<Authorization, 'rules'>> & {
  readonly rules?: readonly (readonly (readonly MatchDraft[])[])[];
};

/** Collects errors with their field path; `at` builds child collectors. */
class Errors {
  constructor(
    readonly list: FieldError[] = [],
    private readonly prefix: readonly (string | number)[] = [],
  ) {}
  at(...seg: (string | number)[]): Errors {
    return new Errors(this.list, [...this.prefix, ...seg]);
  }
  add(message: string, ...seg: (string | number)[]): void {
    const path = [...this.prefix, ...seg];
    this.list.push({ path, field: fieldText(path), message });
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `a.b[0]["ns/h"]`: the same notation the YAML reader uses for its paths. */
export function fieldText(path: readonly (string | number)[]): string {
  let out = '';
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENT.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const KEY = /^[^/]+\/[^/]+$/;
const MAX_U32 = 0xffffffff;

function required(e: Errors, field: string, v: string | undefined): string {
  if (v === undefined || v === '') e.add(v === undefined ? 'required field is missing (expected a string)' : 'must not be empty', field);
  return v ?? '';
}

/** Namespace, service account and trust domain form the SPIFFE identity: reject what no certificate SAN could carry. */
function identitySegment(e: Errors, field: string, v: string, what: 'namespace' | 'service account' | 'trust domain'): void {
  const re = what === 'trust domain' ? TRUST_DOMAIN : SEGMENT;
  if (v === '' || re.test(v)) return;
  const allowed = what === 'trust domain' ? "lower-case letters, digits, '.', '_' or '-'" : "letters, digits, '.', '_' or '-'";
  e.add(`${JSON.stringify(v)} is not a valid ${what} for a SPIFFE identity (expected ${allowed})`, field);
}

function ip(e: Errors, v: string, ...seg: (string | number)[]): string {
  const c = canonicalIp(v);
  if (c === null) e.add(`${JSON.stringify(v)} is not an IP address (expected e.g. 10.0.0.1 or fd00::1)`, ...seg);
  return c ?? v;
}

function port(e: Errors, v: number, min: number, what: string, ...seg: (string | number)[]): void {
  if (!Number.isInteger(v) || v < min || v > 65535) e.add(`${JSON.stringify(v)} is not ${what} (expected an integer from ${min} to 65535)`, ...seg);
}

function u32(e: Errors, v: number, what: string, ...seg: (string | number)[]): void {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) e.add(`${JSON.stringify(v)} is not ${what} (expected an integer from 0 to ${MAX_U32})`, ...seg);
}

function portMap(e: Errors, m: Readonly<Record<number, number>> | undefined, targetMin: number): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [k, v] of Object.entries(m ?? {})) {
    const sp = Number(k);
    port(e, sp, 1, 'a port', k);
    port(e, v, targetMin, targetMin === 0 ? 'a valid target port' : 'a target port', k);
    out[sp] = v;
  }
  return out;
}

function gateway(e: Errors, g: GatewayDraft | null | undefined): GatewayAddress | null {
  if (g === null || g === undefined) return null;
  const hboneMtlsPort = g.hboneMtlsPort ?? DEFAULT_HBONE_PORT;
  port(e, hboneMtlsPort, 1, 'a port', 'hboneMtlsPort');
  if (g.kind === 'address') return { kind: 'address', network: g.network ?? '', ip: ip(e, g.ip, 'destination'), hboneMtlsPort };
  required(e.at('destination'), 'namespace', g.namespace);
  required(e.at('destination'), 'hostname', g.hostname);
  return { kind: 'hostname', namespace: g.namespace, hostname: g.hostname, hboneMtlsPort };
}

function done<T>(e: Errors, value: T): Normalized<T> {
  return e.list.length === 0 ? { ok: true, value } : { ok: false, errors: e.list };
}

/**
 * A complete Workload from a draft. Defaults: service account `default`, trust domain
 * `cluster.local`, cluster `Kubernetes`, capacity 1, protocol TCP, Standard networking,
 * Healthy. IPs are canonicalised (v4-mapped → v4, IPv6 compressed) so index keys agree.
 * A HostNetwork workload keeps its IPs (they are shown in dumps), but the state does not
 * index it by IP: that IP is the node's and belongs to no single workload.
 */
export function normalizeWorkload(d: WorkloadDraft): Normalized<Workload> {
  const e = new Errors();
  const uid = required(e, 'uid', d.uid);
  const name = required(e, 'name', d.name);
  const namespace = required(e, 'namespace', d.namespace);
  const serviceAccount = d.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
  const trustDomain = d.trustDomain || DEFAULT_TRUST_DOMAIN;
  identitySegment(e, 'namespace', namespace, 'namespace');
  identitySegment(e, 'serviceAccount', serviceAccount, 'service account');
  identitySegment(e, 'trustDomain', trustDomain, 'trust domain');
  const workloadIps = (d.workloadIps ?? []).map((v, i) => ip(e, v, 'workloadIps', i));
  const authorizationPolicies = d.authorizationPolicies ?? [];
  authorizationPolicies.forEach((k, i) => {
    if (!KEY.test(k)) e.add(`${JSON.stringify(k)} is not a policy key; expected "<namespace>/<name>"`, 'authorizationPolicies', i);
  });
  const services: Record<string, Record<number, number>> = {};
  for (const [k, ports] of Object.entries(d.services ?? {})) {
    if (!KEY.test(k)) e.add(`${JSON.stringify(k)} is not a service key; expected "<namespace>/<hostname>"`, 'services', k);
    services[k] = portMap(e.at('services', k), ports, 1);
  }
  const capacity = d.capacity ?? DEFAULT_CAPACITY;
  u32(e, capacity, 'a capacity', 'capacity');
  const at = d.applicationTunnel;
  if (at?.port !== undefined && at.port !== null) port(e, at.port, 1, 'a port', 'applicationTunnel', 'port');
  return done(e, {
    uid,
    name,
    namespace,
    serviceAccount,
    trustDomain,
    workloadIps,
    hostname: d.hostname ?? '',
    network: d.network ?? '',
    protocol: d.protocol ?? 'TCP',
    networkMode: d.networkMode ?? 'Standard',
    node: d.node ?? '',
    waypoint: gateway(e.at('waypoint'), d.waypoint),
    networkGateway: gateway(e.at('networkGateway'), d.networkGateway),
    applicationTunnel: at ? { protocol: at.protocol ?? 'NONE', port: at.port ?? null } : null,
    authorizationPolicies,
    status: d.status ?? 'Healthy',
    clusterId: d.clusterId || DEFAULT_CLUSTER_ID,
    locality: { region: d.locality?.region ?? '', zone: d.locality?.zone ?? '', subzone: d.locality?.subzone ?? '' },
    canonicalName: d.canonicalName ?? '',
    canonicalRevision: d.canonicalRevision ?? '',
    workloadName: d.workloadName ?? '',
    workloadType: d.workloadType ?? 'deployment',
    nativeTunnel: d.nativeTunnel ?? false,
    capacity,
    services,
  });
}

/** A VIP with its canonical IP; a prefix below the full length makes it a CIDR VIP (matched by containment). */
function vip(e: Errors, v: VipDraft, i: number): VipAddress {
  const canonical = ip(e, v.ip, 'vips', i);
  const full = canonical.includes(':') ? 128 : 32;
  const prefixLen = v.prefixLen ?? full;
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > full) e.add(`${JSON.stringify(prefixLen)} is not a valid prefix length for ${canonical} (expected 0-${full})`, 'vips', i);
  return { network: v.network ?? '', ip: canonical, prefixLen };
}

/** A complete Service from a draft (Public, Automatic IP families, no load-balancer preferences by default). */
export function normalizeService(d: ServiceDraft): Normalized<Service> {
  const e = new Errors();
  const name = required(e, 'name', d.name);
  const namespace = required(e, 'namespace', d.namespace);
  const hostname = required(e, 'hostname', d.hostname);
  const lb = d.loadBalancer;
  return done(e, {
    name,
    namespace,
    hostname,
    vips: (d.vips ?? []).map((v, i) => vip(e, v, i)),
    ports: portMap(e.at('ports'), d.ports, 0),
    subjectAltNames: d.subjectAltNames ?? [],
    waypoint: gateway(e.at('waypoint'), d.waypoint),
    weightedWaypoints: (d.weightedWaypoints ?? []).map((w, i) => {
      const weight = w.weight ?? 1;
      u32(e, weight, 'a weight', 'weightedWaypoints', i, 'weight');
      return { destination: gateway(e.at('weightedWaypoints', i), w.destination) as GatewayAddress, weight };
    }),
    loadBalancer: lb ? { routingPreferences: lb.routingPreferences ?? [], mode: lb.mode ?? 'Standard', healthPolicy: lb.healthPolicy ?? 'OnlyHealthy' } : null,
    ipFamilies: d.ipFamilies ?? 'Automatic',
    canonical: d.canonical ?? false,
    visibility: d.visibility ?? 'Public',
  });
}

function cidrs(e: Errors, list: readonly Cidr[] | undefined, field: string): Cidr[] {
  return (list ?? []).map((c, i) => {
    const canonical = ip(e, c.ip, field, i);
    const full = canonical.includes(':') ? 128 : 32;
    if (!Number.isInteger(c.prefixLen) || c.prefixLen < 0 || c.prefixLen > full) e.add(`${JSON.stringify(c.prefixLen)} is not a valid prefix length for ${canonical} (expected 0-${full})`, field, i);
    return { ip: canonical, prefixLen: c.prefixLen };
  });
}

function ports(e: Errors, list: readonly number[] | undefined, field: string): number[] {
  const out = [...(list ?? [])];
  out.forEach((p, i) => port(e, p, 1, 'a port', field, i));
  return out;
}

function match(e: Errors, m: MatchDraft): Match {
  return {
    namespaces: m.namespaces ?? [],
    notNamespaces: m.notNamespaces ?? [],
    principals: m.principals ?? [],
    notPrincipals: m.notPrincipals ?? [],
    serviceAccounts: m.serviceAccounts ?? [],
    notServiceAccounts: m.notServiceAccounts ?? [],
    sourceIps: cidrs(e, m.sourceIps, 'sourceIps'),
    notSourceIps: cidrs(e, m.notSourceIps, 'notSourceIps'),
    destinationIps: cidrs(e, m.destinationIps, 'destinationIps'),
    notDestinationIps: cidrs(e, m.notDestinationIps, 'notDestinationIps'),
    destinationPorts: ports(e, m.destinationPorts, 'destinationPorts'),
    notDestinationPorts: ports(e, m.notDestinationPorts, 'notDestinationPorts'),
  };
}

/** A complete Authorization from a draft: scope and action are required (no safe default); dryRun defaults to false. */
export function normalizePolicy(d: PolicyDraft): Normalized<Authorization> {
  const e = new Errors();
  const name = required(e, 'name', d.name);
  const namespace = required(e, 'namespace', d.namespace);
  if (d.scope === undefined) e.add('required field is missing (expected one of Global, Namespace, WorkloadSelector)', 'scope');
  if (d.action === undefined) e.add('required field is missing (expected one of Allow, Deny)', 'action');
  const rules = (d.rules ?? []).map((rule, ri) => rule.map((clause, ci) => clause.map((m, mi) => match(e.at('rules', ri, ci, mi), m))));
  return done(e, { name, namespace, scope: d.scope ?? 'Namespace', action: d.action ?? 'Allow', dryRun: d.dryRun ?? false, rules });
}
