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
 * `allow` passes on an HTTP 200 (or the `status` given, e.g. a waypoint's 403; a `split`
 * check sends `count` requests and compares which app answered); `deny` passes only on SOCKS reply 0x02 (the policy
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
    const proxy = { ip: node.ip, port: node.ports.socks5 };
    if (check.split) {
      out.push({ check, ...(await judgeSplit(check, check.split, () => socksHttpGet(proxy, check.from, check.to.host, check.to.port, timeoutMs, check.path, check.headers))) });
      continue;
    }
    const r = await socksHttpGet(proxy, check.from, check.to.host, check.to.port, timeoutMs, check.path, check.headers);
    out.push({ check, ...judge(check, r) });
  }
  return out;
}

/** The app that answered: the sample apps say "hello from <app> (...)". */
function appOf(body: string): string | null {
  return /^hello from (\S+)/.exec(body)?.[1] ?? null;
}

/** `count` requests; each app's share must be within 7.5 points of its expected percentage. */
async function judgeSplit(check: MeshCheck, split: Readonly<Record<string, number>>, send: () => Promise<SocksHttpResult>): Promise<{ pass: boolean; detail: string }> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < check.count; i++) {
    const r = await send();
    if (r.kind !== 'response' || r.status !== 200) return { pass: false, detail: `request ${i + 1}: ${describe(r)}` };
    const app = appOf(r.body) ?? 'unknown';
    counts[app] = (counts[app] ?? 0) + 1;
  }
  // By name, so the line reads the same whichever app answered first.
  const shown = Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([a, n]) => `${a}=${n}`)
    .join(' ');
  for (const [app, pct] of Object.entries(split)) {
    const got = (100 * (counts[app] ?? 0)) / check.count;
    if (Math.abs(got - pct) > 7.5) return { pass: false, detail: `${check.count} requests: ${shown}; ${app} got ${got.toFixed(1)}%, expected ${pct}% ± 7.5` };
  }
  return { pass: true, detail: `${check.count} requests: ${shown} (expected ${Object.entries(split).map(([a, p]) => `${a} ${p}%`).join(', ')})` };
}

function judge(check: MeshCheck, r: SocksHttpResult): { pass: boolean; detail: string } {
  if (check.expect === 'allow') {
    const want = check.status ?? 200;
    if (r.kind === 'response' && r.status === want) return { pass: true, detail: `HTTP ${r.status} in ${r.ms}ms: ${r.body.trim()}` };
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
