import { policySelectionChanged } from '../state/change';
import type { Workload } from '../state/types';
import type { StateChange, StateView } from '../state/view';

/**
 * Which destinations a state change can re-decide: those selected by a changed policy
 * (a Global one selects all; a Namespace one its namespace; any policy a workload lists by
 * name) and those whose own selection changed. Returns null when no live connection can be
 * affected, so an update that touches no policy re-checks nothing (xDS pushes are frequent).
 * The test for one destination is a few set lookups; it is run once per live connection.
 */
export function reauthorizationScope(change: StateChange, view: StateView): ((dst: Workload) => boolean) | null {
  let global = false;
  const namespaces = new Set<string>();
  const keys = new Set<string>();
  const uids = new Set<string>();
  for (const d of change.changedPolicies) {
    keys.add(d.key);
    for (const p of [d.before, d.after]) {
      if (p?.scope === 'Global') global = true;
      else if (p?.scope === 'Namespace') namespaces.add(p.namespace);
    }
  }
  for (const w of change.workloadsUpdated) {
    const before = change.workloadsBefore.get(w.uid);
    if (before && policySelectionChanged(before, w)) uids.add(w.uid);
  }
  if (!global && namespaces.size === 0 && keys.size === 0 && uids.size === 0) return null;
  if (global) return () => true;
  const selected = (w: Workload): boolean => namespaces.has(w.namespace) || w.authorizationPolicies.some((k) => keys.has(k));
  return (dst) => {
    if (uids.has(dst.uid) || selected(dst)) return true;
    // The connection holds the workload as it was when it opened; the current version decides too.
    const now = view.findWorkloadByUid(dst.uid);
    return now !== undefined && now !== dst && selected(now);
  };
}
