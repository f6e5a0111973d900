import type { Handler } from '../admin/http-util';
import { sendJson } from '../admin/http-util';
import type { StateView } from '../state/view';
import { explain, type ExplainResult } from './explain';

/** Human-readable rendering of an explain result (the CLI's default output). */
export function renderExplain(r: ExplainResult): string {
  const out: string[] = [];
  out.push(`source:      ${r.source.ip}  ${r.source.workload ? `workload ${r.source.workload}` : 'unknown (not a mesh workload)'}`);
  out.push(`identity:    ${r.source.identity ?? 'none (plaintext)'}`);
  out.push(`destination: ${r.destination.addr}  ${r.destination.kind === 'unknown' ? 'unknown (not a workload or service VIP)' : `${r.destination.kind} ${r.destination.name}`}`);
  out.push(`outcome:     ${r.outcome}${r.error ? ` (${r.error.reason}: ${r.error.message})` : ''}`);
  if (r.hops.length > 0) out.push('hops:');
  r.hops.forEach((h, i) => {
    out.push(`  ${i + 1}. ${h.type}: ${h.from} -> ${h.nextHop}${h.to ? ` [${h.to}]` : ''}`);
    if (h.authority) out.push(`     authority: ${h.authority}`);
    if (h.expectedSans.length > 0) out.push(`     expected SANs: ${h.expectedSans.join(', ')}`);
    out.push(`     ${h.note}`);
  });
  const a = r.authorization;
  if (!a) {
    out.push('authorization: not evaluated (no node proxy inbound on this path)');
  } else {
    const d = a.decision;
    out.push(`authorization at ${a.destination} (peer ${a.peerIp}, identity ${a.peerIdentity ?? 'none'}, port ${a.targetPort}):`);
    out.push(`  decision: ${d.allowed ? 'ALLOW' : 'DENY'}: ${d.why}`);
    if (a.evaluated.length === 0) out.push('  policies: none apply');
    for (const p of a.evaluated) {
      const mark = p.policy === d.policy ? ' <- decides' : '';
      out.push(`  - ${p.policy} ${p.action}${p.dryRun ? ' (dry-run)' : ''} scope=${p.scope}: ${p.matched ? 'matched' : 'no match'}${mark}`);
    }
    if (d.dryRunWouldDeny?.length) out.push(`  dry-run: would deny by ${d.dryRunWouldDeny.join(', ')}`);
    if (d.dryRunWouldAllow?.length) out.push(`  dry-run: would allow by ${d.dryRunWouldAllow.join(', ')}`);
  }
  return out.join('\n') + '\n';
}

/**
 * GET /debug/explain?src=<ip>&dst=<ip:port>[&identity=<spiffe|none>] for the admin server
 * (the integrator mounts it with addHandler). JSON out; 400 names the bad parameter.
 */
export function explainHandler(view: StateView, network: string): Handler {
  return (_req, res, url) => {
    const src = url.searchParams.get('src');
    const dst = url.searchParams.get('dst');
    if (!src || !dst) return sendJson(res, 400, { error: 'query parameters src=<ip> and dst=<ip:port> are required (identity=<spiffe id|none> optional)' });
    const identity = url.searchParams.get('identity');
    const r = explain(view, { srcIp: src, dst, network: url.searchParams.get('network') ?? network, ...(identity !== null ? { identity } : {}) });
    return sendJson(res, 'invalid' in r ? 400 : 200, 'invalid' in r ? { error: r.invalid } : r);
  };
}
