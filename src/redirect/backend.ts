/**
 * Which iptables to drive. Hosts differ (nftables-only RHEL 10,
 * Debian's iptables-nft default, legacy-only old kernels), and rules written with one flavour
 * are invisible to the other, so we follow what the namespace already uses:
 *   1. REDIRECT_IPTABLES=nft|legacy forces a flavour;
 *   2. otherwise the flavour that already holds rules in the namespace wins (a CNI or an
 *      earlier install used it); with rules in both, the one plain `iptables` points to;
 *   3. otherwise plain `iptables`'s own flavour (`iptables --version` prints "(nf_tables)"
 *      or "(legacy)"), else whichever flavour binary exists, nft first;
 *   4. with no iptables binary at all but the `nft` tool present (nftables-only hosts), or
 *      when our own `inet ztunnel` table already exists, the native nftables backend
 *      (nft.ts); REDIRECT_IPTABLES=nftables forces it.
 */
import { type Exec, RedirectError, explainFailure } from './exec';
import { NFT_TABLE } from './nft';

export type Flavour = 'nft' | 'legacy' | 'nftables';

export interface Backend {
  readonly flavour: Flavour;
  /** The program that writes the rules (iptables-nft, iptables-legacy, iptables or nft). */
  readonly tool: string;
  /** Program names per family, e.g. iptables-nft / ip6tables-nft. */
  readonly iptables: Readonly<Record<4 | 6, string>>;
  readonly save: Readonly<Record<4 | 6, string>>;
  /** Why this flavour was chosen (printed with the result). */
  readonly why: string;
}

function backendFor(flavour: 'nft' | 'legacy', plain: boolean, why: string): Backend {
  const sfx = plain ? '' : `-${flavour}`;
  return { flavour, tool: `iptables${sfx}`, iptables: { 4: `iptables${sfx}`, 6: `ip6tables${sfx}` }, save: { 4: `iptables${sfx}-save`, 6: `ip6tables${sfx}-save` }, why };
}

function nftablesBackend(why: string): Backend {
  return { flavour: 'nftables', tool: 'nft', iptables: { 4: 'nft', 6: 'nft' }, save: { 4: 'nft', 6: 'nft' }, why };
}

/** The flavour a binary reports, or null when it is absent or says something else. */
async function versionFlavour(exec: Exec, bin: string): Promise<'nft' | 'legacy' | null> {
  const r = await exec([bin, '--version']);
  if (r.code !== 0) return null;
  if (/nf_tables/.test(r.stdout)) return 'nft';
  if (/legacy/.test(r.stdout)) return 'legacy';
  return null;
}

/** Number of rules (`-A` lines) a flavour's save shows in the namespace; 0 when unreadable. */
async function ruleCount(exec: Exec, nsPrefix: readonly string[], saveBin: string): Promise<number> {
  const r = await exec([...nsPrefix, saveBin]);
  if (r.code !== 0) return 0;
  return r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
}

/**
 * Picks the backend. `nsPrefix` runs a command in the target namespace (['ip', 'netns',
 * 'exec', name] or [] for the current one). Throws NO_IPTABLES when nothing usable exists.
 */
export async function detectBackend(exec: Exec, nsPrefix: readonly string[], forced: 'auto' | Flavour): Promise<Backend> {
  const [nft, legacy, plain, nftTool] = await Promise.all([versionFlavour(exec, 'iptables-nft'), versionFlavour(exec, 'iptables-legacy'), versionFlavour(exec, 'iptables'), exec(['nft', '--version'])]);
  const hasNftTool = nftTool.code === 0 && /^nftables v/.test(nftTool.stdout);
  if (forced === 'nftables') {
    if (hasNftTool) return nftablesBackend('REDIRECT_IPTABLES=nftables');
    throw new RedirectError('NO_IPTABLES', 'REDIRECT_IPTABLES=nftables but the nft tool is missing: install nftables (apt-get install nftables)');
  }
  if (forced !== 'auto') {
    if ((forced === 'nft' ? nft : legacy) === forced) return backendFor(forced, false, `REDIRECT_IPTABLES=${forced}`);
    if (plain === forced) return backendFor(forced, true, `REDIRECT_IPTABLES=${forced} (plain iptables is ${forced})`);
    throw new RedirectError('NO_IPTABLES', `REDIRECT_IPTABLES=${forced} but neither iptables-${forced} nor an iptables of that flavour is installed: install iptables (apt-get install iptables)`);
  }
  if (hasNftTool && (await exec([...nsPrefix, 'nft', 'list', 'table', 'inet', NFT_TABLE])).code === 0) {
    return nftablesBackend(`the namespace already has the inet ${NFT_TABLE} nftables table`);
  }
  if (nft === null && legacy === null && plain === null) {
    if (hasNftTool) return nftablesBackend('no iptables binary, nft is installed (nftables-only host)');
    throw new RedirectError('NO_IPTABLES', 'no iptables binary (iptables, iptables-nft, iptables-legacy) and no nft: install iptables (apt-get install iptables) or nftables');
  }
  if (nft !== null && legacy !== null) {
    const [nRules, lRules] = await Promise.all([ruleCount(exec, nsPrefix, 'iptables-nft-save'), ruleCount(exec, nsPrefix, 'iptables-legacy-save')]);
    if (nRules > 0 && lRules === 0) return backendFor('nft', false, `the namespace already has ${nRules} nft rules and no legacy rules`);
    if (lRules > 0 && nRules === 0) return backendFor('legacy', false, `the namespace already has ${lRules} legacy rules and no nft rules`);
    const pick = plain ?? 'nft';
    return backendFor(pick, false, nRules > 0 ? `rules exist in both flavours; following plain iptables (${pick})` : `no rules yet; following plain iptables (${pick})`);
  }
  if (nft !== null) return backendFor('nft', false, 'only iptables-nft is installed');
  if (legacy !== null) return backendFor('legacy', false, 'only iptables-legacy is installed');
  return backendFor(plain as 'nft' | 'legacy', true, `plain iptables (${plain as string})`);
}

/**
 * The command prefix that runs a program inside a namespace: `ip netns exec <name>` for a
 * named one, `nsenter --net=<path>` for a namespace file such as /proc/<pid>/ns/net (how
 * the node agent names pods that have no ip-netns name).
 */
export function netnsPrefix(netns: string): string[] {
  return netns.startsWith('/') ? ['nsenter', `--net=${netns}`] : ['ip', 'netns', 'exec', netns];
}

/** Checks the namespace exists and we may enter it, before anything else runs there. */
export async function checkNamespace(exec: Exec, netns: string): Promise<void> {
  const isPath = netns.startsWith('/') && !netns.split('/').includes('..');
  if (!isPath && (!/^[A-Za-z0-9_.-]{1,255}$/.test(netns) || netns === '.' || netns === '..')) throw new RedirectError('INVALID', `REDIRECT_NETNS: ${JSON.stringify(netns)} is not a valid network namespace name or path`);
  const argv = [...netnsPrefix(netns), 'true'];
  const r = await exec(argv);
  if (r.code !== 0) throw explainFailure(argv, r, netns);
}

/** Whether IPv6 is usable in the namespace (a kernel booted with ipv6.disable=1 has no such proc file). */
export async function ipv6Enabled(exec: Exec, nsPrefix: readonly string[]): Promise<{ ok: boolean; note: string }> {
  const r = await exec([...nsPrefix, 'cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6']);
  if (r.code !== 0) return { ok: false, note: 'IPv6 is disabled in the kernel (no /proc/sys/net/ipv6): IPv6 rules skipped' };
  if (r.stdout.trim() === '1') return { ok: false, note: 'IPv6 is disabled in this namespace (disable_ipv6=1): IPv6 rules skipped' };
  return { ok: true, note: '' };
}
