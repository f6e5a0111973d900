import { LineCounter, parseDocument } from 'yaml';
import { policyKey, serviceKey, type Authorization, type Service, type Workload } from './types';
import type { ParseCtx } from './config/common';
import { parsePolicy } from './config/policy-schema';
import { parseService } from './config/service-schema';
import { parseWorkload } from './config/workload-schema';
import { YamlReader, type LocalConfigError, type YNode } from './config/yaml-reader';

export type { LocalConfigError } from './config/yaml-reader';
export { formatLocalConfigError } from './config/yaml-reader';

/** The whole local state: what LOCAL_XDS_PATH / LOCAL_XDS describe (replaces all state). */
export interface LocalConfig {
  readonly workloads: readonly Workload[];
  readonly services: readonly Service[];
  readonly policies: readonly Authorization[];
}

export type LocalConfigResult = { ok: true; value: LocalConfig } | { ok: false; errors: LocalConfigError[] };

/**
 * Parses ztunnel's local config format (camelCase, unknown fields
 * rejected). Pure: never throws on bad input; instead every problem in the file is
 * collected with its path and line/column, so one edit-reload cycle shows all of them.
 * `source` (a file name or "LOCAL_XDS") is used only in YAML syntax messages.
 */
export function parseLocalConfig(text: string, source: string): LocalConfigResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const p = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
        return { path: '', line: p.line, column: p.col, message: `YAML syntax error in ${source}: ${e.message.split('\n')[0]}` };
      }),
    };
  }
  const r = new YamlReader(lc);
  const ctx: ParseCtx = { r, refs: [] };
  const root = doc.contents;
  // An empty file is what an in-place rewrite (`> file`) leaves for a moment; taking it as
  // "no workloads" would tear down every listener. An intentionally empty state says so.
  if (r.isNull(root)) return { ok: false, errors: [{ path: '', line: 1, column: 1, message: 'the config is empty; an empty state is written "workloads: []" (an empty file is taken for a rewrite in progress)' }] };
  const top = r.object(root, '', ['workloads', 'services', 'policies']);
  if (!top) return { ok: false, errors: r.errors };

  const workloads = r.list(top.get('workloads'), 'workloads', 'workloads', unique(r, 'uid', (w: Workload) => w.uid, (n, p) => parseWorkload(ctx, n, p)));
  const services = r.list(top.get('services'), 'services', 'services', unique(r, 'namespace/hostname', serviceKey, (n, p) => parseService(ctx, n, p)));
  const policies = r.list(top.get('policies'), 'policies', 'policies', unique(r, 'namespace/name', policyKey, (n, p) => parsePolicy(ctx, n, p)));

  const serviceKeys = new Set(services.map(serviceKey));
  const policyKeys = new Set(policies.map(policyKey));
  for (const ref of ctx.refs) {
    if (r.errors.some((e) => e.path === ref.path)) continue; // malformed: reported already
    const known = ref.kind === 'service' ? serviceKeys : policyKeys;
    if (known.has(ref.key)) continue;
    const list = [...known].sort();
    const expected = list.length === 0 ? `no ${ref.kind === 'service' ? 'services' : 'policies'} are defined in this file` : `known: ${list.slice(0, 8).join(', ')}${list.length > 8 ? ', …' : ''}`;
    r.error(ref.node, ref.path, `${ref.what} names ${ref.kind} ${JSON.stringify(ref.key)}, which is not defined (${expected})`);
  }

  if (r.errors.length > 0) return { ok: false, errors: sortErrors(r.errors) };
  return { ok: true, value: { workloads, services, policies } };
}

/** Duplicate keys would make "replace all state" ambiguous; every later copy is reported. */
function unique<T>(r: YamlReader, what: string, keyOf: (t: T) => string, parse: (n: YNode, p: string) => T | undefined): (n: YNode, p: string) => T | undefined {
  const seen = new Set<string>();
  return (n, p) => {
    const v = parse(n, p);
    if (v === undefined) return undefined;
    const k = keyOf(v);
    if (seen.has(k)) {
      r.error(n, p, `duplicate ${what} ${JSON.stringify(k)}`);
      return undefined;
    }
    seen.add(k);
    return v;
  };
}

function sortErrors(errors: LocalConfigError[]): LocalConfigError[] {
  return [...errors].sort((a, b) => a.line - b.line || a.column - b.column);
}
