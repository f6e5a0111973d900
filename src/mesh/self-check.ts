import type { MeshCheck, MeshNode } from './mesh-config';
import { socksHttpGet, type SocksHttpResult } from './socks-http';

export interface CheckResult {
  readonly check: MeshCheck;
  readonly pass: boolean;
  readonly detail: string;
}

/** SOCKS5 reply 0x02: "connection not allowed by ruleset" (a policy DENY). */
const NOT_ALLOWED = 0x02;

/**
 * Runs each self-check request through the named node's SOCKS5 listener and judges it:
 * `allow` passes on an HTTP 200; `deny` passes only on SOCKS reply 0x02 (the policy
 * denied it), so an unrelated failure (proxy down, timeout) never counts as a pass.
 */
export async function runSelfCheck(checks: readonly MeshCheck[], nodes: readonly MeshNode[], timeoutMs = 5000): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const check of checks) {
    const node = nodes.find((n) => n.name === check.via);
    if (!node) {
      out.push({ check, pass: false, detail: `node ${check.via} not found` });
      continue;
    }
    const r = await socksHttpGet({ ip: node.ip, port: node.ports.socks5 }, check.from, check.to.host, check.to.port, timeoutMs);
    out.push({ check, ...judge(check, r) });
  }
  return out;
}

function judge(check: MeshCheck, r: SocksHttpResult): { pass: boolean; detail: string } {
  if (check.expect === 'allow') {
    if (r.kind === 'response' && r.status === 200) return { pass: true, detail: `HTTP 200 in ${r.ms}ms: ${r.body.trim()}` };
    return { pass: false, detail: describe(r) };
  }
  if (r.kind === 'socks-refused' && r.code === NOT_ALLOWED) return { pass: true, detail: `refused by policy (SOCKS reply 0x02) in ${r.ms}ms` };
  return { pass: false, detail: `expected a policy denial, got ${describe(r)}` };
}

function describe(r: SocksHttpResult): string {
  switch (r.kind) {
    case 'response':
      return `HTTP ${r.status}: ${r.body.trim().slice(0, 80)}`;
    case 'socks-refused':
      return `SOCKS reply 0x${r.code.toString(16).padStart(2, '0')} after ${r.ms}ms`;
    case 'error':
      return `error: ${r.message}`;
  }
}
