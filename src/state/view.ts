import type { Authorization, NetworkAddress, Service, Workload } from './types';

/** What changed in one applied batch; emitted after the batch is visible to readers. */
export interface StateChange {
  readonly version: number;
  readonly workloadsAdded: readonly Workload[];
  readonly workloadsRemoved: readonly Workload[];
  /** Same uid, new content (listeners and pools re-check; a changed uid behind an IP is add+remove). */
  readonly workloadsUpdated: readonly Workload[];
  /** The version each updated workload had before this batch, by uid (what changed decides what to redo). */
  readonly workloadsBefore: ReadonlyMap<string, Workload>;
  readonly servicesChanged: boolean;
  /** Services added or changed, and the keys (`ns/hostname`) of removed ones: the node's worker threads replay them. */
  readonly servicesUpserted: readonly Service[];
  readonly servicesRemoved: readonly string[];
  readonly policiesChanged: boolean;
  /** Policies added, changed or removed, with both versions (`before` absent when added, `after` when removed). */
  readonly changedPolicies: readonly PolicyDelta[];
}

export interface PolicyDelta {
  readonly key: string;
  readonly before: Authorization | undefined;
  readonly after: Authorization | undefined;
}

/**
 * The read-only query API over workload state. Lookups are synchronous and
 * never wait; the single writer (StateUpdater) is the only thing that mutates.
 */
export interface StateView {
  readonly version: number;
  findWorkloadByAddr(addr: NetworkAddress): Workload | undefined;
  findWorkloadByUid(uid: string): Workload | undefined;
  /** Exact VIPs first, then the longest matching CIDR VIP. `clientNamespace` breaks ties as ztunnel does. */
  findServiceByVip(addr: NetworkAddress, clientNamespace?: string): Service | undefined;
  findServiceByHostname(namespace: string, hostname: string): Service | undefined;
  /** Workloads whose identity is spiffe://td/ns/<ns>/sa/<sa>. */
  findWorkloadsByIdentity(trustDomain: string, namespace: string, serviceAccount: string): readonly Workload[];
  /** Endpoint workloads of a service (by `ns/hostname` key). */
  endpointsOf(service: Service): readonly Workload[];
  /** Workloads whose `node` equals the name given. */
  workloadsOnNode(node: string): readonly Workload[];
  /** Global + namespace + workload-selected policies for a destination workload. */
  policiesFor(workload: Workload): readonly Authorization[];
  allWorkloads(): readonly Workload[];
  allServices(): readonly Service[];
  allPolicies(): readonly Authorization[];
  /** Subscribe to applied batches; returns an unsubscribe function. */
  onChange(listener: (change: StateChange) => void): () => void;
}
