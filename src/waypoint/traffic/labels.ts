import type { Workload } from '../../state/types';

/**
 * The labels a DestinationRule subset can select on. The workload model carries no free
 * label map (Istio's workload API has none either), so subsets select on what it does
 * carry: the canonical name and revision (Istio derives them from `app`/`version` and the
 * `service.istio.io/canonical-*` labels) and the topology labels.
 */
const LABELS: Readonly<Record<string, (w: Workload) => string>> = {
  app: (w) => w.canonicalName,
  'app.kubernetes.io/name': (w) => w.canonicalName,
  'service.istio.io/canonical-name': (w) => w.canonicalName,
  version: (w) => w.canonicalRevision,
  'app.kubernetes.io/version': (w) => w.canonicalRevision,
  'service.istio.io/canonical-revision': (w) => w.canonicalRevision,
  'topology.kubernetes.io/region': (w) => w.locality.region,
  'topology.kubernetes.io/zone': (w) => w.locality.zone,
  'topology.istio.io/subzone': (w) => w.locality.subzone,
  'topology.istio.io/cluster': (w) => w.clusterId,
  'topology.istio.io/network': (w) => w.network,
  'kubernetes.io/hostname': (w) => w.node,
};

export const SUBSET_LABELS: readonly string[] = Object.keys(LABELS);

/** Whether the workload carries every label of the selector (an empty selector selects all). */
export function selects(labels: Readonly<Record<string, string>>, w: Workload): boolean {
  for (const k in labels) if (LABELS[k]?.(w) !== labels[k]) return false;
  return true;
}
