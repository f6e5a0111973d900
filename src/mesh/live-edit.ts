import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { MeshCheck, MeshConfig } from './mesh-config';
import type { CheckResult } from './self-check';
import { runSelfCheck } from './self-check';

/** The policy the live-edit check adds and removes again. */
export const LIVE_EDIT_POLICY = 'self-check-live-edit';

/**
 * The self-check's live step: takes the first allowed request to a mesh workload, adds a
 * DENY policy for its source identity to the served file (the dev control plane pushes it
 * over xDS), and expects the request to be denied without restarting anything; then removes
 * the policy again and expects it allowed. `edit` rewrites the served file.
 */
export async function runLiveEditCheck(mesh: MeshConfig, edit: (f: (text: string) => string) => void, timeoutMs = 15_000): Promise<CheckResult | null> {
  const base = mesh.checks.find((c) => c.expect === 'allow' && mesh.workloads.some((w) => w.ips.includes(c.to.host)));
  const src = base && mesh.workloads.find((w) => w.ips.includes(base.from));
  const dst = base && mesh.workloads.find((w) => w.ips.includes(base.to.host));
  if (!base || !src || !dst) return null;
  const principal = `${mesh.trustDomain}/ns/${src.namespace}/sa/${src.serviceAccount}`;
  const policy = { name: LIVE_EDIT_POLICY, namespace: dst.namespace, scope: 'Namespace', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: principal }] }]]] };
  const check: MeshCheck = { ...base, name: `live edit: a DENY policy added to the served file denies ${src.namespace}/${src.name} → ${base.to.host}:${base.to.port}, removing it allows again (no restart)`, expect: 'deny' };
  const started = Date.now();
  edit((text) => {
    const doc = (parseYaml(text) ?? {}) as { policies?: unknown[] };
    doc.policies = [...(doc.policies ?? []), policy];
    return stringifyYaml(doc);
  });
  const denied = await until(check, mesh, timeoutMs);
  const deniedAfter = Date.now() - started;
  edit((text) => {
    const doc = (parseYaml(text) ?? {}) as { policies?: { name?: string }[] };
    doc.policies = (doc.policies ?? []).filter((p) => p.name !== LIVE_EDIT_POLICY);
    return stringifyYaml(doc);
  });
  const allowed = await until(base, mesh, timeoutMs);
  if (!denied.pass) return { check, pass: false, detail: `after the edit: ${denied.detail}` };
  if (!allowed.pass) return { check, pass: false, detail: `denied ${deniedAfter}ms after the edit, but after removing the policy: ${allowed.detail}` };
  return { check, pass: true, detail: `denied ${deniedAfter}ms after the edit (pushed over xDS), allowed again after removing it` };
}

/** Repeats the request until it has the expected outcome or the time is up. */
async function until(check: MeshCheck, mesh: MeshConfig, timeoutMs: number): Promise<CheckResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await runSelfCheck([check], mesh.nodes);
    if (r!.pass || Date.now() > deadline) return r!;
    await new Promise((res) => setTimeout(res, 100));
  }
}
