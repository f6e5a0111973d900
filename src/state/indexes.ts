import { policyKey, serviceKey, type Authorization, type Service, type Workload } from './types';
import { addrKey, bytesInCidr, ipBytes } from '../util/ip';

/**
 * key → ids. Members live in an insertion-ordered Set (O(1) add/remove even for huge
 * groups such as "every workload on this node"); lookups return a frozen array built on
 * first read after a change, so an array handed to a reader is never mutated afterwards
 * and stays a consistent snapshot across later batches.
 */
export class MultiIndex {
  private readonly m = new Map<string, { set: Set<string>; arr: readonly string[] | null }>();
  add(key: string, id: string): void {
    let e = this.m.get(key);
    if (!e) this.m.set(key, (e = { set: new Set(), arr: null }));
    if (e.set.has(id)) return;
    e.set.add(id);
    e.arr = null;
  }
  remove(key: string, id: string): void {
    const e = this.m.get(key);
    if (!e || !e.set.delete(id)) return;
    if (e.set.size === 0) this.m.delete(key);
    else e.arr = null;
  }
  get(key: string): readonly string[] {
    const e = this.m.get(key);
    if (!e) return EMPTY;
    return (e.arr ??= Object.freeze([...e.set]));
  }
  /** Sorted contents, for consistency checks against a rebuild. */
  snapshot(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const k of [...this.m.keys()].sort()) out[k] = [...(this.m.get(k) as { set: Set<string> }).set].sort();
    return out;
  }
}

const EMPTY: readonly string[] = Object.freeze([]);

export function identityKey(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

interface CidrVip {
  readonly network: string;
  readonly bytes: Uint8Array;
  readonly prefixLen: number;
  readonly service: string;
}

/**
 * Every index over workloads, services and policies. Mutated only through add/remove by
 * ProxyState's writer, always synchronously within one batch, so readers on the same event
 * loop never observe a half-applied batch.
 */
export class StateIndexes {
  readonly workloads = new Map<string, Workload>();
  readonly services = new Map<string, Service>();
  readonly policies = new Map<string, Authorization>();
  /** network/ip → uids (HostNetwork workloads are not indexed: their IP is the node's). */
  readonly workloadByAddr = new MultiIndex();
  readonly workloadsByIdentity = new MultiIndex();
  readonly workloadsByNode = new MultiIndex();
  /** service key → endpoint workload uids (from Workload.services; may precede the Service). */
  readonly endpoints = new MultiIndex();
  /** network/ip → service keys, full-length VIPs only. */
  readonly serviceByVip = new MultiIndex();
  cidrVips: readonly CidrVip[] = [];
  readonly policiesByNamespace = new MultiIndex();
  globalPolicies: readonly string[] = EMPTY;

  addWorkload(w: Workload): void {
    this.workloads.set(w.uid, w);
    for (const k of addrKeys(w)) this.workloadByAddr.add(k, w.uid);
    this.workloadsByIdentity.add(identityKey(w.trustDomain, w.namespace, w.serviceAccount), w.uid);
    if (w.node !== '') this.workloadsByNode.add(w.node, w.uid);
    for (const svc of Object.keys(w.services)) this.endpoints.add(svc, w.uid);
  }

  /**
   * Replaces a workload in place, touching only the index keys that differ. Removing and
   * re-adding the same member is linear in the group's size in V8's hash tables (a 10k
   * member group such as "every workload on this node" costs tens of µs per cycle), and
   * most updates (status, labels, endpoints) leave the keys as they were.
   */
  updateWorkload(before: Workload, after: Workload): void {
    const uid = after.uid;
    this.workloads.set(uid, after);
    rekey(this.workloadByAddr, addrKeys(before), addrKeys(after), uid);
    rekey(this.workloadsByIdentity, [identityKey(before.trustDomain, before.namespace, before.serviceAccount)], [identityKey(after.trustDomain, after.namespace, after.serviceAccount)], uid);
    rekey(this.workloadsByNode, before.node === '' ? [] : [before.node], after.node === '' ? [] : [after.node], uid);
    rekey(this.endpoints, Object.keys(before.services), Object.keys(after.services), uid);
  }

  removeWorkload(uid: string): Workload | undefined {
    const w = this.workloads.get(uid);
    if (!w) return undefined;
    this.workloads.delete(uid);
    for (const k of addrKeys(w)) this.workloadByAddr.remove(k, uid);
    this.workloadsByIdentity.remove(identityKey(w.trustDomain, w.namespace, w.serviceAccount), uid);
    if (w.node !== '') this.workloadsByNode.remove(w.node, uid);
    for (const svc of Object.keys(w.services)) this.endpoints.remove(svc, uid);
    return w;
  }

  addService(s: Service): void {
    const key = serviceKey(s);
    this.services.set(key, s);
    const cidrs: CidrVip[] = [];
    for (const v of s.vips) {
      const full = v.ip.includes(':') ? 128 : 32;
      if (v.prefixLen >= full) this.serviceByVip.add(addrKey(v.network, v.ip), key);
      else cidrs.push({ network: v.network, bytes: ipBytes(v.ip) as Uint8Array, prefixLen: v.prefixLen, service: key });
    }
    // Longest prefix first, so the first hit in a scan is the most specific.
    if (cidrs.length > 0) this.cidrVips = [...this.cidrVips, ...cidrs].sort((a, b) => b.prefixLen - a.prefixLen || cmp(a.service, b.service));
  }

  removeService(key: string): Service | undefined {
    const s = this.services.get(key);
    if (!s) return undefined;
    this.services.delete(key);
    for (const v of s.vips) this.serviceByVip.remove(addrKey(v.network, v.ip), key);
    if (this.cidrVips.some((c) => c.service === key)) this.cidrVips = this.cidrVips.filter((c) => c.service !== key);
    return s;
  }

  /** Replaces a policy in place; the scope indexes change only when scope or namespace did. */
  updatePolicy(before: Authorization, after: Authorization): void {
    if (before.scope !== after.scope || before.namespace !== after.namespace) {
      this.removePolicy(policyKey(before));
      this.addPolicy(after);
      return;
    }
    this.policies.set(policyKey(after), after);
  }

  addPolicy(p: Authorization): void {
    const key = policyKey(p);
    this.policies.set(key, p);
    if (p.scope === 'Global') this.globalPolicies = [...this.globalPolicies, key];
    else if (p.scope === 'Namespace') this.policiesByNamespace.add(p.namespace, key);
  }

  removePolicy(key: string): Authorization | undefined {
    const p = this.policies.get(key);
    if (!p) return undefined;
    this.policies.delete(key);
    if (p.scope === 'Global') this.globalPolicies = this.globalPolicies.filter((k) => k !== key);
    else if (p.scope === 'Namespace') this.policiesByNamespace.remove(p.namespace, key);
    return p;
  }

  /** Service keys whose CIDR VIPs contain ip on network, most specific first. */
  cidrServices(network: string, ip: string): string[] {
    if (this.cidrVips.length === 0) return [];
    const b = ipBytes(ip);
    if (!b) return [];
    const out: string[] = [];
    let best = -1;
    for (const c of this.cidrVips) {
      if (best >= 0 && c.prefixLen < best) break;
      if (c.network === network && bytesInCidr(b, c.bytes, c.prefixLen)) {
        best = c.prefixLen;
        out.push(c.service);
      }
    }
    return out;
  }

  /** Everything, normalised and sorted: two index sets are equal iff their snapshots are. */
  snapshot(): unknown {
    return {
      workloads: [...this.workloads.keys()].sort(),
      services: [...this.services.keys()].sort(),
      policies: [...this.policies.keys()].sort(),
      workloadByAddr: this.workloadByAddr.snapshot(),
      workloadsByIdentity: this.workloadsByIdentity.snapshot(),
      workloadsByNode: this.workloadsByNode.snapshot(),
      endpoints: this.endpoints.snapshot(),
      serviceByVip: this.serviceByVip.snapshot(),
      cidrVips: this.cidrVips.map((c) => `${c.network}/${[...c.bytes].join('.')}/${c.prefixLen}=${c.service}`).sort(),
      policiesByNamespace: this.policiesByNamespace.snapshot(),
      globalPolicies: [...this.globalPolicies].sort(),
    };
  }
}

/** HostNetwork workloads are not indexed by IP: their IP is the node's. */
function addrKeys(w: Workload): string[] {
  return w.networkMode === 'HostNetwork' ? [] : w.workloadIps.map((ip) => addrKey(w.network, ip));
}

/** Moves `id` from the keys only `before` has to the keys only `after` has. */
function rekey(index: MultiIndex, before: readonly string[], after: readonly string[], id: string): void {
  for (const k of before) if (!after.includes(k)) index.remove(k, id);
  for (const k of after) if (!before.includes(k)) index.add(k, id);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
