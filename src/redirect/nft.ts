/**
 * The same in-pod capture rules as rules.ts, for hosts that have nftables but no iptables
 * binaries at all (RHEL 10 and other nftables-only hosts).
 * One `inet` table owned by us holds both chains for IPv4 and IPv6, so install is one atomic
 * `nft -f` transaction (create, delete, re-create: idempotent), remove is one `delete table`,
 * and nothing else in the ruleset is touched. Rules are written exactly as `nft list table`
 * prints them, so `check` compares the listing line by line.
 */
import { type RedirectSpec, type Family, ALWAYS_EXCLUDED_INBOUND_PORTS, DNS_PROXY_PORT, LOOPBACK_CIDR, cidrsOf } from './rules';
import { nftOrigSrcChains } from './orig-src';

export const NFT_TABLE = 'ztunnel';

const hex8 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** `meta mark & mask == mark` in nft's listing form (mask 0xfff as ztunnel, all bits above it). */
export function nftMarkMatch(mark: number): string {
  const mask = mark <= 0xfff ? 0xfff : 0xffffffff;
  return `meta mark & ${hex8(mask)} == ${hex8(mark)}`;
}

/** `ip`/`ip6` address match for a canonical CIDR; a full-length prefix is written as a bare address. */
function addr(dir: 'saddr' | 'daddr', cidr: string, family: Family): string {
  const [ip, bits] = cidr.split('/');
  const full = family === 4 ? '32' : '128';
  return `${family === 4 ? 'ip' : 'ip6'} ${dir} ${bits === full ? ip : cidr}`;
}

/** The rule lines of the prerouting chain (after its `type` line). */
export function nftPreroutingRules(spec: RedirectSpec, families: readonly Family[]): string[] {
  const ports = [...new Set([...ALWAYS_EXCLUDED_INBOUND_PORTS, ...spec.excludeInboundPorts])].sort((a, b) => a - b);
  const lines = ['meta l4proto != tcp return', `tcp dport ${spec.hbonePort} return`, `${nftMarkMatch(spec.packetMark)} return`];
  for (const f of families) for (const c of cidrsOf(spec.probeSources, f)) lines.push(`${addr('saddr', c, f)} return`);
  for (const f of families) lines.push(`${addr('daddr', LOOPBACK_CIDR[f], f)} return`);
  lines.push(ports.length === 1 ? `tcp dport ${ports[0]} return` : `tcp dport { ${ports.join(', ')} } return`);
  lines.push(`meta l4proto tcp redirect to :${spec.inboundPlaintextPort}`);
  return lines;
}

/** The rule lines of the output chain. */
export function nftOutputRules(spec: RedirectSpec, families: readonly Family[]): string[] {
  const lines = spec.dnsCapture ? [] : ['meta l4proto != tcp return'];
  lines.push(`${nftMarkMatch(spec.packetMark)} return`);
  if (spec.proxyUid !== null) lines.push(`meta skuid ${spec.proxyUid} return`);
  if (spec.dnsCapture) {
    // DNS (UDP too) is redirected before the TCP-only filter below.
    lines.push(`oifname != "lo" udp dport 53 redirect to :${DNS_PROXY_PORT}`);
    for (const f of families) lines.push(`${f === 4 ? 'ip daddr != 127.0.0.1' : 'ip6 daddr != ::1'} tcp dport 53 redirect to :${DNS_PROXY_PORT}`);
    lines.push('meta l4proto != tcp return');
  }
  for (const f of families) lines.push(`${addr('daddr', LOOPBACK_CIDR[f], f)} return`);
  for (const f of families) for (const c of cidrsOf(spec.excludeOutboundCidrs, f)) lines.push(`${addr('daddr', c, f)} return`);
  lines.push(`meta l4proto tcp redirect to :${spec.outboundPort}`);
  return lines;
}

/** The table as `nft list table inet ztunnel` prints it (tabs, blank line between chains). */
export function nftTableListing(spec: RedirectSpec, families: readonly Family[]): string {
  const chain = (name: string, type: string, rules: string[]): string => [`\tchain ${name} {`, `\t\t${type}`, ...rules.map((r) => `\t\t${r}`), '\t}'].join('\n');
  return [
    `table inet ${NFT_TABLE} {`,
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', nftPreroutingRules(spec, families)),
    '',
    chain('output', 'type nat hook output priority -100; policy accept;', nftOutputRules(spec, families)),
    ...(spec.origSrc ? nftOrigSrcChains(spec.packetMark).flatMap((c) => ['', c]) : []),
    '}',
  ].join('\n');
}

/**
 * The `nft -f -` input for install: declaring then deleting the table makes the script work
 * whether or not it exists, and the whole file is one transaction (no window without rules).
 */
export function nftInstallScript(spec: RedirectSpec, families: readonly Family[]): string {
  return `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${nftTableListing(spec, families)}\n`;
}
