/**
 * In-pod capture rules (the model of ztunnel's scripts/ztunnel-redirect-inpod.sh): rules live
 * inside the pod's network namespace and send its TCP to the proxy's per-pod listeners.
 *
 *   nat OUTPUT → ZTUNNEL-OUTPUT: the pod's outgoing TCP → :15001 (outbound capture), except
 *     packets carrying the proxy mark (the proxy's own sockets: no loop), the proxy uid (when
 *     given), loopback destinations and excluded CIDRs.
 *   nat PREROUTING → ZTUNNEL-PREROUTING: incoming TCP → :15006 (inbound plaintext), except
 *     :15008 (HBONE, reached directly), marked packets, loopback, the kubelet probe SNAT
 *     sources (169.254.7.127 and fd16:9254:7127:1337:ffff:ffff:ffff:ffff unless
 *     REDIRECT_PROBE_SOURCES says otherwise), and the proxy's own
 *     ports 15020/15021/15090 plus REDIRECT_EXCLUDE_PORTS.
 *   With DNS capture, ZTUNNEL-OUTPUT also sends the pod's DNS (UDP and TCP 53) to :15053.
 *
 * Everything sits in chains we own, entered by one jump from each built-in chain, so install
 * is idempotent (flush and refill our chains; add a jump only when `-C` says it is absent) and
 * remove leaves no trace (delete jumps, flush, delete chains). Rules are written in the exact
 * canonical form `iptables -S` prints, so `check` can compare the live chains line by line.
 *
 * This file is pure: config in, steps out. Running them is apply.ts's job.
 */
import { isIP } from 'node:net';
import { ORIG_SRC_CONNMARK } from './orig-src';

export type Family = 4 | 6;

/** Ports never captured inbound: ztunnel's metrics (15020), readiness (15021) and Envoy stats (15090). */
export const ALWAYS_EXCLUDED_INBOUND_PORTS: readonly number[] = [15020, 15021, 15090];
const LOOPBACK: Readonly<Record<Family, string>> = { 4: '127.0.0.0/8', 6: '::1/128' };

export const LOOPBACK_CIDR = LOOPBACK;
export const CHAIN_OUTPUT = 'ZTUNNEL-OUTPUT';
export const CHAIN_PREROUTING = 'ZTUNNEL-PREROUTING';

/** What to capture; built from the REDIRECT_* keys by the CLI. */
export interface RedirectSpec {
  readonly packetMark: number;
  readonly proxyUid: number | null;
  readonly outboundPort: number;
  readonly inboundPlaintextPort: number;
  readonly hbonePort: number;
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundCidrs: readonly string[];
  /** Sources whose inbound TCP is never captured (kubelet probes); IPs or CIDRs of either family. */
  readonly probeSources: readonly string[];
  /** Also route replies to original-source dials back to the proxy (orig-src.ts). */
  readonly origSrc?: boolean;
  /** DNS capture: the pod's UDP and TCP port 53 → the DNS proxy (its own marked upstream queries are not). */
  readonly dnsCapture?: boolean;
}

/** Where captured DNS goes: the node proxy's DNS listener inside the pod (DNS_PROXY_ADDR's port). */
export const DNS_PROXY_PORT = 15053;
const LOOPBACK_HOST: Readonly<Record<Family, string>> = { 4: '127.0.0.1/32', 6: '::1/128' };

/**
 * istio-cni's DNS redirects: UDP 53 leaving by any interface but lo, and TCP 53 to anything
 * but localhost, go to the DNS proxy. They sit after the mark (and uid) exclusions, so the
 * proxy's own upstream queries, made in the pod with the mark, leave untouched.
 */
export function dnsRules(family: Family): string[][] {
  return [
    ['!', '-o', 'lo', '-p', 'udp', '-m', 'udp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(DNS_PROXY_PORT)],
    ['!', '-d', LOOPBACK_HOST[family], '-p', 'tcp', '-m', 'tcp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(DNS_PROXY_PORT)],
  ];
}

/** One iptables operation in one table. `args` are exactly the words after `-t <table>`. */
export type Table = 'nat' | 'mangle';
export type Step =
  | { readonly op: 'ensure-chain'; readonly table: Table; readonly chain: string }
  | { readonly op: 'flush-chain'; readonly table: Table; readonly chain: string }
  | { readonly op: 'append'; readonly table: Table; readonly chain: string; readonly rule: readonly string[] }
  | { readonly op: 'ensure-jump'; readonly table: Table; readonly from: string; readonly to: string }
  | { readonly op: 'delete-jump'; readonly table: Table; readonly from: string; readonly to: string }
  | { readonly op: 'delete-chain'; readonly table: Table; readonly chain: string };

/** The mark match ztunnel uses: mark/0xfff, widened to all bits for marks above 0xfff. */
export function markMatch(mark: number): string {
  const mask = mark <= 0xfff ? 0xfff : 0xffffffff;
  return `0x${mark.toString(16)}/0x${mask.toString(16)}`;
}

/**
 * The mangle rules original-source dials need (see orig-src.ts), in `iptables -S` form: the
 * proxy's marked dial marks its connection; that connection's replies get the mark back.
 * They live in chains of the same names as the nat ones, in the mangle table.
 */
export function mangleRules(packetMark: number): { prerouting: string[][]; output: string[][] } {
  return {
    prerouting: [['-m', 'mark', '--mark', markMatch(packetMark), '-j', 'CONNMARK', '--set-xmark', ORIG_SRC_CONNMARK]],
    output: [['-m', 'connmark', '--mark', ORIG_SRC_CONNMARK, '-j', 'CONNMARK', '--restore-mark', '--nfmask', '0xffffffff', '--ctmask', '0xffffffff']],
  };
}

/** Canonical CIDR (`10.0.0.0/8`, a bare IP gets /32 or /128) and its family, or an error message. */
export function parseCidr(raw: string): { cidr: string; family: Family } | { error: string } {
  const [ip, bits, extra] = raw.trim().split('/');
  const fam = isIP(ip ?? '');
  if (extra !== undefined || (fam !== 4 && fam !== 6)) return { error: `${JSON.stringify(raw)} is not an IP address or CIDR` };
  const max = fam === 4 ? 32 : 128;
  if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max)) return { error: `${JSON.stringify(raw)}: prefix length must be 0-${max}` };
  return { cidr: `${(ip as string).toLowerCase()}/${bits ?? max}`, family: fam };
}

/** Problems with a spec, each naming the key and value; empty when it is usable. */
export function validateSpec(spec: RedirectSpec): string[] {
  const problems: string[] = [];
  for (const c of spec.excludeOutboundCidrs) {
    const r = parseCidr(c);
    if ('error' in r) problems.push(`REDIRECT_EXCLUDE_CIDRS: ${r.error}`);
  }
  for (const c of spec.probeSources) {
    const r = parseCidr(c);
    if ('error' in r) problems.push(`REDIRECT_PROBE_SOURCES: ${r.error}`);
  }
  const ports = [spec.outboundPort, spec.inboundPlaintextPort, spec.hbonePort];
  if (new Set(ports).size !== ports.length) problems.push(`outbound (${spec.outboundPort}), inbound plaintext (${spec.inboundPlaintextPort}) and HBONE (${spec.hbonePort}) ports must differ`);
  if (spec.packetMark === 0) problems.push('PACKET_MARK: 0 cannot mark the proxy sockets (use e.g. 0x539)');
  return problems;
}

/** The canonical CIDRs of one family from a list (invalid entries are reported by validateSpec). */
export function cidrsOf(list: readonly string[], family: Family): string[] {
  const out: string[] = [];
  for (const raw of list) {
    const c = parseCidr(raw);
    if (!('error' in c) && c.family === family) out.push(c.cidr);
  }
  return out;
}

/** The rules of ZTUNNEL-OUTPUT for one family, in `iptables -S` form (without `-A <chain>`). */
export function outputRules(spec: RedirectSpec, family: Family): string[][] {
  const rules: string[][] = [['-m', 'mark', '--mark', markMatch(spec.packetMark), '-j', 'RETURN']];
  if (spec.proxyUid !== null) rules.push(['-m', 'owner', '--uid-owner', String(spec.proxyUid), '-j', 'RETURN']);
  if (spec.dnsCapture) rules.push(...dnsRules(family));
  rules.push(['-d', LOOPBACK[family], '-j', 'RETURN']);
  for (const cidr of cidrsOf(spec.excludeOutboundCidrs, family)) rules.push(['-d', cidr, '-j', 'RETURN']);
  rules.push(['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(spec.outboundPort)]);
  return rules;
}

/** The rules of ZTUNNEL-PREROUTING for one family, in `iptables -S` form. */
export function preroutingRules(spec: RedirectSpec, family: Family): string[][] {
  const rules: string[][] = [
    ['-p', 'tcp', '-m', 'tcp', '--dport', String(spec.hbonePort), '-j', 'RETURN'],
    ['-m', 'mark', '--mark', markMatch(spec.packetMark), '-j', 'RETURN'],
    ...cidrsOf(spec.probeSources, family).map((cidr) => ['-s', cidr, '-j', 'RETURN']),
    ['-d', LOOPBACK[family], '-j', 'RETURN'],
  ];
  const ports = [...new Set([...ALWAYS_EXCLUDED_INBOUND_PORTS, ...spec.excludeInboundPorts])].sort((a, b) => a - b);
  // multiport takes at most 15 ports per rule.
  for (let i = 0; i < ports.length; i += 15) rules.push(['-p', 'tcp', '-m', 'multiport', '--dports', ports.slice(i, i + 15).join(','), '-j', 'RETURN']);
  rules.push(['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(spec.inboundPlaintextPort)]);
  return rules;
}

/**
 * Install (or refresh) for one family: our chains exist, hold exactly our rules, and are
 * jumped to first. The mangle chains of original source exist only when asked for; a
 * re-install without it removes them.
 */
export function installSteps(spec: RedirectSpec, family: Family): Step[] {
  const steps: Step[] = [];
  const mangle = mangleRules(spec.packetMark);
  const chains: Array<readonly [Table, string, string, string[][]]> = [
    ['nat', CHAIN_PREROUTING, 'PREROUTING', preroutingRules(spec, family)],
    ['nat', CHAIN_OUTPUT, 'OUTPUT', outputRules(spec, family)],
  ];
  if (spec.origSrc) chains.push(['mangle', CHAIN_PREROUTING, 'PREROUTING', mangle.prerouting], ['mangle', CHAIN_OUTPUT, 'OUTPUT', mangle.output]);
  for (const [table, chain, from, rules] of chains) {
    steps.push({ op: 'ensure-chain', table, chain }, { op: 'flush-chain', table, chain });
    for (const rule of rules) steps.push({ op: 'append', table, chain, rule });
    steps.push({ op: 'ensure-jump', table, from, to: chain });
  }
  if (!spec.origSrc) steps.push(...removeTableSteps('mangle'));
  return steps;
}

/** Remove (the same for both families): jumps first (so nothing is captured half-way), then our chains. */
export function removeSteps(): Step[] {
  return [...removeTableSteps('nat'), ...removeTableSteps('mangle')];
}

function removeTableSteps(table: Table): Step[] {
  return [
    { op: 'delete-jump', table, from: 'PREROUTING', to: CHAIN_PREROUTING },
    { op: 'delete-jump', table, from: 'OUTPUT', to: CHAIN_OUTPUT },
    { op: 'delete-chain', table, chain: CHAIN_PREROUTING },
    { op: 'delete-chain', table, chain: CHAIN_OUTPUT },
  ];
}

/** The `iptables -S` lines a correct install shows for our chains (used by `check`). */
export function expectedChainListing(spec: RedirectSpec, family: Family): Map<string, string[]> {
  const m = new Map<string, string[]>();
  m.set(CHAIN_PREROUTING, [`-N ${CHAIN_PREROUTING}`, ...preroutingRules(spec, family).map((r) => `-A ${CHAIN_PREROUTING} ${r.join(' ')}`)]);
  m.set(CHAIN_OUTPUT, [`-N ${CHAIN_OUTPUT}`, ...outputRules(spec, family).map((r) => `-A ${CHAIN_OUTPUT} ${r.join(' ')}`)]);
  return m;
}

/** The same for the mangle chains of original source (empty when it is off). */
export function expectedMangleListing(spec: RedirectSpec): Map<string, string[]> {
  const m = new Map<string, string[]>();
  if (!spec.origSrc) return m;
  const rules = mangleRules(spec.packetMark);
  m.set(CHAIN_PREROUTING, [`-N ${CHAIN_PREROUTING}`, ...rules.prerouting.map((r) => `-A ${CHAIN_PREROUTING} ${r.join(' ')}`)]);
  m.set(CHAIN_OUTPUT, [`-N ${CHAIN_OUTPUT}`, ...rules.output.map((r) => `-A ${CHAIN_OUTPUT} ${r.join(' ')}`)]);
  return m;
}

/** Quotes a word for a POSIX shell when needed (dry-run output is a runnable script). */
function sh(word: string): string {
  return /^[A-Za-z0-9_./:,=+@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A step as the exact shell command(s) apply.ts runs. `prefix` is the command up to the table
 * (e.g. ['ip', 'netns', 'exec', 'pod1', 'iptables-nft']).
 */
export function renderStep(step: Step, prefix: readonly string[]): string {
  const ipt = (...args: string[]): string => [...prefix, '-t', step.table, ...args].map(sh).join(' ');
  switch (step.op) {
    case 'ensure-chain':
      return `${ipt('-S', step.chain)} >/dev/null 2>&1 || ${ipt('-N', step.chain)}`;
    case 'flush-chain':
      return ipt('-F', step.chain);
    case 'append':
      return ipt('-A', step.chain, ...step.rule);
    case 'ensure-jump':
      return `${ipt('-C', step.from, '-j', step.to)} 2>/dev/null || ${ipt('-I', step.from, '1', '-j', step.to)}`;
    case 'delete-jump':
      return `while ${ipt('-C', step.from, '-j', step.to)} 2>/dev/null; do ${ipt('-D', step.from, '-j', step.to)}; done`;
    case 'delete-chain':
      return `if ${ipt('-S', step.chain)} >/dev/null 2>&1; then ${ipt('-F', step.chain)} && ${ipt('-X', step.chain)}; fi`;
  }
}
