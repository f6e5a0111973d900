import type { Workload } from './types';
import type { StateChange } from './view';

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * A pooled HBONE connection was made to a peer's address and verified against its
 * identity; it stays valid while both are unchanged. Anything else about the workload
 * (labels, status, services, waypoint) does not make that connection wrong: a different
 * waypoint or protocol simply stops routing to it, and it idles out.
 */
export function peerIdentityOrAddressChanged(before: Workload, after: Workload): boolean {
  return (
    before.trustDomain !== after.trustDomain ||
    before.namespace !== after.namespace ||
    before.serviceAccount !== after.serviceAccount ||
    before.network !== after.network ||
    !sameList(before.workloadIps, after.workloadIps)
  );
}

/** Workload uids whose pooled connections must be dropped after this change: removed ones, and ones whose identity or address moved. */
export function peersToEvict(change: StateChange): string[] {
  const out = change.workloadsRemoved.map((w) => w.uid);
  for (const w of change.workloadsUpdated) {
    const before = change.workloadsBefore.get(w.uid);
    if (!before || peerIdentityOrAddressChanged(before, w)) out.push(w.uid);
  }
  return out;
}

/** Whether a workload's own policy selection (its namespace, the policies it lists by name) changed. */
export function policySelectionChanged(before: Workload, after: Workload): boolean {
  return before.namespace !== after.namespace || !sameList(before.authorizationPolicies, after.authorizationPolicies);
}
