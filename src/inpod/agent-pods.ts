import { parse } from 'yaml';

/** One pod the stand-in node agent enrols: its ZDS identity and its network namespace. */
export interface AgentPodSpec {
  /** ZDS uid; match the workload uid in the proxy's state (xDS or LOCAL_XDS_PATH). */
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** A named namespace (`ip netns`, /var/run/netns/<name>) or a namespace file such as /proc/<pid>/ns/net. */
  readonly netns: string;
}

/** Where a netns reference is opened from. */
export function netnsPath(netns: string): string {
  return netns.startsWith('/') ? netns : `/var/run/netns/${netns}`;
}

const NAME = /^[A-Za-z0-9_.-]{1,255}$/;

/**
 * Parses the agent's pods file (YAML: `pods: [{uid, name, namespace, serviceAccount, netns}]`).
 * Pure; returns every problem with the pod's index and the field, so a bad edit is rejected
 * as a whole and the agent keeps the last good set.
 */
export function parseAgentPods(text: string): { pods: AgentPodSpec[]; errors: string[] } {
  const errors: string[] = [];
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return { pods: [], errors: [`not valid YAML: ${(err as Error).message}`] };
  }
  if (doc === null || doc === undefined) return { pods: [], errors: [] };
  const list = (doc as { pods?: unknown }).pods;
  if (list === undefined || list === null) return { pods: [], errors: [] };
  if (!Array.isArray(list)) return { pods: [], errors: ['pods: expected a list'] };
  const pods: AgentPodSpec[] = [];
  const seen = new Set<string>();
  list.forEach((raw: unknown, i) => {
    const at = `pods[${i}]`;
    if (typeof raw !== 'object' || raw === null) {
      errors.push(`${at}: expected a mapping`);
      return;
    }
    const r = raw as Record<string, unknown>;
    const str = (k: string, def?: string): string => {
      const v = r[k] ?? def;
      if (typeof v !== 'string' || v === '') {
        errors.push(`${at}.${k}: expected a non-empty string, got ${JSON.stringify(v ?? null)}`);
        return '';
      }
      return v;
    };
    const spec: AgentPodSpec = { uid: str('uid'), name: str('name'), namespace: str('namespace', 'default'), serviceAccount: str('serviceAccount', 'default'), netns: str('netns') };
    if (spec.netns && !spec.netns.startsWith('/') && !NAME.test(spec.netns)) errors.push(`${at}.netns: ${JSON.stringify(spec.netns)} is neither a namespace name nor an absolute path`);
    if (spec.netns.startsWith('/') && spec.netns.split('/').includes('..')) errors.push(`${at}.netns: ${JSON.stringify(spec.netns)} must not contain '..'`);
    if (spec.uid && seen.has(spec.uid)) errors.push(`${at}.uid: ${JSON.stringify(spec.uid)} appears twice`);
    seen.add(spec.uid);
    pods.push(spec);
  });
  return { pods: errors.length > 0 ? [] : pods, errors };
}
