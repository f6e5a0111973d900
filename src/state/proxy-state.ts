import type { Logger } from 'pino';
import { policyKey, serviceKey, type Authorization, type NetworkAddress, type Service, type Workload } from './types';
import type { PolicyDelta, StateChange, StateView } from './view';
import { addrKey, canonicalIp } from '../util/ip';
import { identityKey, StateIndexes } from './indexes';
import { Holdings } from './ownership';
import type { SourceWriter, StateBatch } from './source';

export type { StateBatch } from './source';

/**
 * The state version and who hears of changes: shared by the updater, which bumps the version
 * and announces each change, and its read side, which only reads the version and adds
 * listeners. Not exported: no one else can move the version.
 */
class ChangeFeed {
  version = 0;
  readonly listeners = new Set<(c: StateChange) => void>();
}

/**
 * The read side of workload state. It only reads the indexes the
 * StateUpdater owns; it has no way to change them. Lookups are synchronous and allocate
 * only where they must return a list built from several indexes.
 */
export class ProxyState implements StateView {
  constructor(
    private readonly idx: StateIndexes,
    private readonly feed: ChangeFeed,
  ) {}

  get version(): number {
    return this.feed.version;
  }

  findWorkloadByAddr(addr: NetworkAddress): Workload | undefined {
    const ip = canonicalIp(addr.ip);
    if (ip === null) return undefined;
    const uids = this.idx.workloadByAddr.get(addrKey(addr.network, ip));
    // Several workloads on one IP only happens transiently (IP reuse); the newest wins.
    const uid = uids[uids.length - 1];
    return uid === undefined ? undefined : this.idx.workloads.get(uid);
  }

  findWorkloadByUid(uid: string): Workload | undefined {
    return this.idx.workloads.get(uid);
  }

  findServiceByVip(addr: NetworkAddress, clientNamespace?: string): Service | undefined {
    const ip = canonicalIp(addr.ip);
    if (ip === null) return undefined;
    const exact = this.pick(this.idx.serviceByVip.get(addrKey(addr.network, ip)), clientNamespace);
    if (exact) return exact;
    return this.pick(this.idx.cidrServices(addr.network, ip), clientNamespace);
  }

  /**
   * ztunnel's tie-break for a VIP shared by several Services: the client's own namespace
   * first, then `canonical`, then the lowest key (deterministic). Namespace-visible Services
   * are invisible to clients of other namespaces; with no client namespace (admin tools)
   * every Service is visible.
   */
  private pick(keys: readonly string[], clientNamespace: string | undefined): Service | undefined {
    let best: Service | undefined;
    let bestScore = -1;
    let bestKey = '';
    for (const k of keys) {
      const s = this.idx.services.get(k);
      if (!s) continue;
      if (s.visibility === 'Namespace' && clientNamespace !== undefined && s.namespace !== clientNamespace) continue;
      const score = (clientNamespace !== undefined && s.namespace === clientNamespace ? 2 : 0) + (s.canonical ? 1 : 0);
      if (score > bestScore || (score === bestScore && k < bestKey)) {
        best = s;
        bestScore = score;
        bestKey = k;
      }
    }
    return best;
  }

  findServiceByHostname(namespace: string, hostname: string): Service | undefined {
    return this.idx.services.get(`${namespace}/${hostname}`);
  }

  /** Services with this hostname in any namespace (hostname authorities prefer the caller's namespace). */
  findServicesByHostname(hostname: string): readonly Service[] {
    const out: Service[] = [];
    for (const s of this.idx.services.values()) if (s.hostname === hostname) out.push(s);
    return out;
  }

  findWorkloadsByIdentity(trustDomain: string, namespace: string, serviceAccount: string): readonly Workload[] {
    return this.resolve(this.idx.workloadsByIdentity.get(identityKey(trustDomain, namespace, serviceAccount)));
  }

  endpointsOf(service: Service): readonly Workload[] {
    return this.resolve(this.idx.endpoints.get(serviceKey(service)));
  }

  workloadsOnNode(node: string): readonly Workload[] {
    return this.resolve(this.idx.workloadsByNode.get(node));
  }

  /**
   * ztunnel's policy set for a destination: the workload's namespace policies, GLOBAL
   * (root namespace) policies, and the policies the workload lists by name (unknown
   * names skipped: they may simply not have arrived yet). Each policy appears once.
   */
  policiesFor(workload: Workload): readonly Authorization[] {
    const out: Authorization[] = [];
    const seen = new Set<string>();
    const add = (key: string): void => {
      if (seen.has(key)) return;
      const p = this.idx.policies.get(key);
      if (!p) return;
      seen.add(key);
      out.push(p);
    };
    // ztunnel's order (namespace, global, selected): it decides which matching DENY is named.
    for (const k of this.idx.policiesByNamespace.get(workload.namespace)) add(k);
    for (const k of this.idx.globalPolicies) add(k);
    for (const k of workload.authorizationPolicies) add(k);
    return out;
  }

  findPolicy(key: string): Authorization | undefined {
    return this.idx.policies.get(key);
  }

  allWorkloads(): readonly Workload[] {
    return [...this.idx.workloads.values()];
  }

  allServices(): readonly Service[] {
    return [...this.idx.services.values()];
  }

  allPolicies(): readonly Authorization[] {
    return [...this.idx.policies.values()];
  }

  onChange(listener: (change: StateChange) => void): () => void {
    this.feed.listeners.add(listener);
    return () => void this.feed.listeners.delete(listener);
  }

  private resolve(uids: readonly string[]): Workload[] {
    const out: Workload[] = [];
    for (const u of uids) {
      const w = this.idx.workloads.get(u);
      if (w) out.push(w);
    }
    return out;
  }
}

/**
 * The ONLY writer of workload state. Sources write through their own SourceWriter
 * (`source(id)`), which records what each source holds (see Holdings for what happens when
 * two sources name the same resource) and turns each write into the effective change; the
 * change is applied synchronously in one go (removals, then upserts), so no reader on the
 * event loop can see part of it, and listeners run after it is in place. Sources never
 * touch the indexes.
 */
export class StateUpdater {
  private readonly idx = new StateIndexes();
  private readonly feed = new ChangeFeed();
  readonly view: ProxyState = new ProxyState(this.idx, this.feed);
  private readonly held = { workloads: new Holdings<Workload>(), services: new Holdings<Service>(), policies: new Holdings<Authorization>() };
  private readonly writers = new Map<string, SourceWriter>();

  constructor(private readonly logger?: Logger) {}

  /** The writer of source `id` (one per id: asking again returns the same writer). */
  source(id: string): SourceWriter {
    let w = this.writers.get(id);
    if (!w) {
      const writer: SourceWriter = {
        id,
        applyBatch: (batch) => this.write(id, batch),
        replaceAll: (c) =>
          this.write(id, {
            workloads: { upsert: c.workloads, remove: this.notListed(this.held.workloads, id, c.workloads.map((x) => x.uid)) },
            services: { upsert: c.services, remove: this.notListed(this.held.services, id, c.services.map(serviceKey)) },
            policies: { upsert: c.policies, remove: this.notListed(this.held.policies, id, c.policies.map(policyKey)) },
          }),
      };
      this.writers.set(id, (w = writer));
    }
    return w;
  }

  /** Sources holding a resource, oldest write first (for /config_dump and conflict reports). */
  holders(kind: 'workloads' | 'services' | 'policies', key: string): string[] {
    return this.held[kind].holdersOf(key);
  }

  private notListed<T>(h: Holdings<T>, source: string, keys: string[]): string[] {
    const keep = new Set(keys);
    return h.keysOf(source).filter((k) => !keep.has(k));
  }

  /** Turns one source's batch into the effective batch (what the merged state must become). */
  private write(source: string, batch: StateBatch): StateChange | null {
    return this.apply({
      workloads: this.effective(source, 'workloads', batch.workloads, (w) => w.uid),
      services: this.effective(source, 'services', batch.services, serviceKey),
      policies: this.effective(source, 'policies', batch.policies, policyKey),
    });
  }

  private effective<T>(source: string, kind: keyof StateUpdater['held'], part: { readonly upsert?: readonly T[]; readonly remove?: readonly string[] } | undefined, keyOf: (t: T) => string): { upsert: T[]; remove: string[] } {
    const h = this.held[kind] as unknown as Holdings<T>;
    const out = { upsert: [] as T[], remove: [] as string[] };
    for (const key of part?.remove ?? []) {
      const now = h.drop(key, source);
      if (now === undefined) out.remove.push(key);
      else if (now !== null) out.upsert.push(now);
    }
    const overlap: string[] = [];
    const others = new Set<string>();
    for (const v of part?.upsert ?? []) {
      const key = keyOf(v);
      const held = h.put(key, source, v);
      if (held.length > 0) {
        overlap.push(key);
        for (const o of held) others.add(o);
      }
      out.upsert.push(v);
    }
    // One line per write, not per resource: a file overlapping a stream may share thousands.
    if (overlap.length > 0) {
      this.logger?.warn(
        { kind, source, alsoHeldBy: [...others], count: overlap.length, resources: overlap.slice(0, 10) },
        `${overlap.length} ${kind} defined by more than one source; the most recent write (${source}) is in force`,
      );
    }
    return out;
  }

  /** Applies an effective batch; returns the change, or null when it changed nothing (no version bump, no event). */
  private apply(batch: StateBatch): StateChange | null {
    const idx = this.idx;
    const beforeW = new Map<string, Workload | undefined>();
    const touchW = (uid: string): void => void (beforeW.has(uid) || beforeW.set(uid, idx.workloads.get(uid)));
    const beforeP = new Map<string, Authorization | undefined>();
    const touchP = (key: string): void => void (beforeP.has(key) || beforeP.set(key, idx.policies.get(key)));
    const servicesUpserted: Service[] = [];
    const servicesRemoved: string[] = [];

    for (const uid of batch.workloads?.remove ?? []) {
      touchW(uid);
      idx.removeWorkload(uid);
    }
    for (const key of batch.services?.remove ?? []) if (idx.removeService(key) !== undefined) servicesRemoved.push(key);
    for (const key of batch.policies?.remove ?? []) {
      touchP(key);
      idx.removePolicy(key);
    }

    for (const w of batch.workloads?.upsert ?? []) {
      touchW(w.uid);
      const old = idx.workloads.get(w.uid);
      if (old && deepEqual(old, w)) continue;
      if (old) idx.updateWorkload(old, w);
      else idx.addWorkload(w);
    }
    for (const s of batch.services?.upsert ?? []) {
      const old = idx.services.get(serviceKey(s));
      if (old && deepEqual(old, s)) continue;
      if (old) idx.removeService(serviceKey(s));
      idx.addService(s);
      servicesUpserted.push(s);
    }
    for (const p of batch.policies?.upsert ?? []) {
      const key = policyKey(p);
      touchP(key);
      const old = idx.policies.get(key);
      if (old && deepEqual(old, p)) continue;
      if (old) idx.updatePolicy(old, p);
      else idx.addPolicy(p);
    }

    const added: Workload[] = [];
    const removed: Workload[] = [];
    const updated: Workload[] = [];
    const workloadsBefore = new Map<string, Workload>();
    for (const [uid, before] of beforeW) {
      const after = idx.workloads.get(uid);
      if (!before && after) added.push(after);
      else if (before && !after) removed.push(before);
      else if (before && after && before !== after && !deepEqual(before, after)) {
        updated.push(after);
        workloadsBefore.set(uid, before);
      }
    }
    const changedPolicies: PolicyDelta[] = [];
    for (const [key, before] of beforeP) {
      const after = idx.policies.get(key);
      if (before !== after && !deepEqual(before, after)) changedPolicies.push({ key, before, after });
    }
    const servicesChanged = servicesUpserted.length + servicesRemoved.length > 0;
    if (added.length + removed.length + updated.length + changedPolicies.length === 0 && !servicesChanged) return null;

    this.feed.version++;
    const change: StateChange = {
      version: this.feed.version,
      workloadsAdded: added,
      workloadsRemoved: removed,
      workloadsUpdated: updated,
      workloadsBefore,
      servicesChanged,
      servicesUpserted,
      servicesRemoved,
      policiesChanged: changedPolicies.length > 0,
      changedPolicies,
    };
    for (const l of [...this.feed.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.logger?.warn({ err, version: change.version }, 'state change listener failed');
      }
    }
    return change;
  }

  /**
   * What every lookup index holds, sorted (GET /debug/state-index): answers "why does this
   * address resolve to that workload" on a live proxy, and equals a from-scratch rebuild's
   * after any sequence of incremental updates.
   */
  indexSnapshot(): unknown {
    return this.idx.snapshot();
  }
}

/** Structural equality of plain state data (key order independent). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ak = Object.keys(a);
  const bk = Object.keys(b);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
