import { isIP } from 'node:net';
import type { Service, Workload } from '../state/types';
import type { StateView } from '../state/view';
import type { HostIndex } from './host-index';
import { aliasesOf, canonicalName, wildcardsOf, type Alias } from './names';

/** Answers from the mesh state live this long (ztunnel's fixed TTL). */
export const MESH_TTL_SECONDS = 30;

/** Who asks: the workload behind the listener (its namespace and network decide what it sees). */
export interface DnsClient {
  readonly name: string;
  readonly namespace: string;
  readonly network: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
}

export interface AnswerSettings {
  readonly clusterDomain: string;
  /** IPV6_ENABLED=false: AAAA questions about mesh names get an empty answer. */
  readonly ipv6Enabled: boolean;
  /** PREFERED_SERVICE_NAMESPACE: among Services of one hostname, after the client's own namespace and canonical ones. */
  readonly preferredNamespace: string | null;
}

export type MeshRecord =
  | { readonly type: 'A' | 'AAAA' | 'CNAME'; readonly name: string; readonly ttl: number; readonly class: 'IN'; readonly data: string };

/** What the mesh state says about a question. */
export type LocalAnswer =
  /** Not a mesh name (or not an A/AAAA question): the upstream resolvers answer it. */
  | { readonly kind: 'forward' }
  /** A mesh name: an authoritative answer, possibly empty (never NXDOMAIN: the name exists). */
  | { readonly kind: 'answer'; readonly records: readonly MeshRecord[]; readonly result: 'success' | 'no records' | 'family not served'; readonly matched: string; readonly addresses: number };

type Match = { readonly service: Service; readonly name: string; readonly alias: Alias } | { readonly workload: Workload; readonly name: string; readonly alias: Alias };

/**
 * ztunnel's answer rules for one question. `qname` is as asked (case kept for the answer);
 * `shuffle` reorders addresses in place (random in the server, fixed in tests).
 */
export function answerFromState(
  state: StateView,
  index: HostIndex,
  client: DnsClient,
  qname: string,
  qtype: string,
  settings: AnswerSettings,
  shuffle: (ips: string[]) => void,
): LocalAnswer {
  if (qtype !== 'A' && qtype !== 'AAAA') return { kind: 'forward' };
  const match = findMatch(index, client, canonicalName(qname), settings);
  if (!match) return { kind: 'forward' };
  const family = qtype === 'A' ? 4 : 6;
  const matched = 'service' in match ? `${match.service.namespace}/${match.service.hostname}` : `${match.workload.namespace}/${match.workload.name}`;
  if ((family === 6 && !settings.ipv6Enabled) || ('service' in match && !familyServed(match.service, family))) {
    return { kind: 'answer', records: [], result: 'family not served', matched, addresses: 0 };
  }
  const ips = 'service' in match ? serviceAddresses(state, match.service, client, family) : match.workload.workloadIps.filter((ip) => isIP(ip) === family);
  if (ips.length === 0) return { kind: 'answer', records: [], result: 'no records', matched, addresses: 0 };
  shuffle(ips);
  const records: MeshRecord[] = [];
  const asked = qname.endsWith('.') ? qname.slice(0, -1) : qname;
  let owner = asked;
  // A search suffix was removed: say so with a CNAME, so the client caches the real name (not for wildcard hosts).
  if (match.alias.stripped !== null && !match.name.startsWith('*')) {
    records.push({ type: 'CNAME', name: asked, ttl: MESH_TTL_SECONDS, class: 'IN', data: match.alias.stripped });
    owner = match.alias.stripped;
  }
  for (const ip of ips) records.push({ type: qtype, name: owner, ttl: MESH_TTL_SECONDS, class: 'IN', data: ip });
  return { kind: 'answer', records, result: 'success', matched, addresses: ips.length };
}

/**
 * The first alias (then wildcard of it) that names a Service visible to the client, else a
 * Workload with that hostname and addresses. Services without VIPs count only when they are
 * Kubernetes headless Services (hostname under `svc.<domain>`): a VIP-less ServiceEntry has
 * nothing to answer with and its name belongs to the real DNS.
 */
function findMatch(index: HostIndex, client: DnsClient, name: string, settings: AnswerSettings): Match | undefined {
  // Most queries name a host exactly (an FQDN): try it before building every alias.
  const exact = matchAlias(index, client, { name, stripped: null }, settings);
  if (exact) return exact;
  for (const alias of aliasesOf(name, client.namespace, settings.clusterDomain).slice(1)) {
    const m = matchAlias(index, client, alias, settings);
    if (m) return m;
  }
  return undefined;
}

function matchAlias(index: HostIndex, client: DnsClient, alias: Alias, settings: AnswerSettings): Match | undefined {
  const svcSuffix = `.svc.${settings.clusterDomain}`;
  for (const host of wildcardsOf(alias.name)) {
    const candidates = index.servicesFor(host).filter((s) => (s.vips.length > 0 || canonicalName(s.hostname).endsWith(svcSuffix)) && (s.visibility !== 'Namespace' || s.namespace === client.namespace));
    const service = bestService(candidates, client.namespace, settings.preferredNamespace);
    if (service) return { service, name: host, alias };
  }
  const workload = index.workloadsFor(alias.name).find((w) => w.workloadIps.length > 0);
  return workload ? { workload, name: alias.name, alias } : undefined;
}

/**
 * ztunnel's choice among Services sharing a hostname: the client's own namespace wins at
 * once; otherwise the first canonical one; otherwise one in the preferred namespace; otherwise
 * the first (candidates come sorted by `ns/hostname`).
 */
export function bestService(candidates: readonly Service[], clientNamespace: string, preferred: string | null): Service | undefined {
  let canonical: Service | undefined;
  let pref: Service | undefined;
  for (const s of candidates) {
    if (s.namespace === clientNamespace) return s;
    if (s.canonical && !canonical) canonical = s;
    if (preferred !== null && s.namespace === preferred && !pref) pref = s;
  }
  return canonical ?? pref ?? candidates[0];
}

function familyServed(s: Service, family: 4 | 6): boolean {
  if (s.ipFamilies === 'IPv4') return family === 4;
  if (s.ipFamilies === 'IPv6') return family === 6;
  return true;
}

/**
 * A Service's addresses for a client: its VIPs on the client's network (host VIPs only: a
 * CIDR VIP is a range, not an address), or for a headless Service each endpoint's first
 * address of the family.
 */
function serviceAddresses(state: StateView, s: Service, client: DnsClient, family: 4 | 6): string[] {
  if (s.vips.length > 0) {
    const full = family === 4 ? 32 : 128;
    return s.vips.filter((v) => v.network === client.network && v.prefixLen === full && isIP(v.ip) === family).map((v) => v.ip);
  }
  const out: string[] = [];
  for (const w of state.endpointsOf(s)) {
    const ip = w.workloadIps.find((a) => isIP(a) === family);
    if (ip !== undefined) out.push(ip);
  }
  return out;
}

/** Fisher–Yates with Math.random: the order of answers spreads clients over VIPs and endpoints. */
export function shuffleInPlace(ips: string[]): void {
  for (let i = ips.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = ips[i] as string;
    ips[i] = ips[j] as string;
    ips[j] = t;
  }
}
