import type { Command } from './command';
import { describeKeys, loadConfig, type ConfigIssue } from '../config/load';
import { REDIRECT_KEYS } from '../config/keys-tools';
import type { ConfigOf } from '../config/key';
import { runRedirect, type RedirectAction } from '../redirect/apply';
import { systemExec, RedirectError } from '../redirect/exec';
import type { RedirectSpec } from '../redirect/rules';
import { CHAIN_OUTPUT, CHAIN_PREROUTING } from '../redirect/rules';

const ACTIONS: readonly RedirectAction[] = ['install', 'remove', 'check'];

/** Short aliases for the flags people type most (the long forms derive from the env names). */
const ALIASES: Readonly<Record<string, string>> = { '--dry-run': '--redirect-dry-run', '--netns': '--redirect-netns' };

function help(): string {
  return `usage: ztunnel-ts redirect install|remove|check [--redirect-netns NAME] [--dry-run] [--flags]

In-pod traffic capture (ztunnel's in-pod model): iptables nat rules INSIDE a pod's network
namespace send its outgoing TCP to the proxy's outbound listener (:15001) and incoming TCP
to the inbound plaintext listener (:15006). HBONE (:15008) is reached directly. With
--dns-capture the pod's DNS (UDP and TCP port 53) goes to the DNS proxy (:15053). Sockets
carrying PACKET_MARK (the proxy's own) are never captured, so the proxy cannot loop.

  install   create or refresh chains ${CHAIN_PREROUTING} / ${CHAIN_OUTPUT} (idempotent) and jump to them
  remove    delete the jumps and the chains, leaving no trace
  check     exit 0 when the rules are installed and current, 1 with the differences otherwise

--dry-run prints the exact commands as a shell script and changes nothing. Needs root
(CAP_NET_ADMIN) and iptables (nft or legacy flavour, detected), or on hosts without
iptables the nft tool (one atomic 'inet ztunnel' table); REDIRECT_IPTABLES forces one.

${describeKeys(REDIRECT_KEYS)}
`;
}

/** Turns parsed keys into the rule spec; problems name the key and value. */
export function buildRedirectSpec(c: Omit<ConfigOf<typeof REDIRECT_KEYS>, 'netns' | 'dryRun'>): { spec: RedirectSpec; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  let proxyUid: number | null = null;
  if (c.proxyUid !== null) {
    if (/^\d{1,10}$/.test(c.proxyUid) && Number(c.proxyUid) <= 0xfffffffe) proxyUid = Number(c.proxyUid);
    else issues.push({ key: 'REDIRECT_PROXY_UID', value: c.proxyUid, expected: 'a numeric uid' });
  }
  const spec: RedirectSpec = {
    packetMark: c.packetMark,
    proxyUid,
    outboundPort: c.outboundPort,
    inboundPlaintextPort: c.inboundPlaintextPort,
    hbonePort: c.hbonePort,
    excludeInboundPorts: c.excludePorts,
    excludeOutboundCidrs: c.excludeOutboundCidrs,
    probeSources: c.probeSources,
    origSrc: c.origSrc,
    ...(c.dnsCapture ? { dnsCapture: true } : {}),
  };
  return { spec, issues };
}

export const command: Command = {
  name: 'redirect',
  summary: 'install or remove traffic-capture rules (iptables) for a pod netns',
  help,
  async run(io) {
    const argv = io.argv.map((a) => {
      const [flag, ...rest] = a.split('=');
      const long = ALIASES[flag as string];
      return long === undefined ? a : [long, ...rest].join('=');
    });
    const { config, positionals } = loadConfig(REDIRECT_KEYS, io.env, argv);
    const action = positionals[0] as RedirectAction | undefined;
    if (action === undefined || !ACTIONS.includes(action) || positionals.length > 1) {
      io.stderr.write(`ztunnel-ts redirect: expected one action (${ACTIONS.join(', ')}), got ${JSON.stringify(positionals.join(' '))}\n\n${help()}`);
      return 2;
    }
    const { spec, issues } = buildRedirectSpec(config);
    if (issues.length > 0) {
      io.stderr.write(`ztunnel-ts redirect: invalid configuration:\n${issues.map((i) => `  ${i.key}=${JSON.stringify(i.value)}: expected ${i.expected}`).join('\n')}\n`);
      return 2;
    }
    const where = config.netns === null ? 'the current network namespace' : `network namespace ${config.netns}`;
    try {
      const out = await runRedirect(systemExec(), { action, spec, netns: config.netns, backend: config.backend, dryRun: config.dryRun && action !== 'check' });
      for (const n of out.notes) io.stderr.write(`ztunnel-ts redirect: note: ${n}\n`);
      const using = `${out.backend.tool} (${out.backend.why})`;
      if (action === 'check') {
        if (out.drift.length === 0) {
          io.stdout.write(`capture rules in ${where} are installed and current (${using}; IPv${out.families.join(', IPv')})\n`);
          return 0;
        }
        io.stdout.write(`capture rules in ${where} are NOT as expected (${using}):\n  ${out.drift.join('\n  ')}\n`);
        return 1;
      }
      if (config.dryRun) {
        io.stdout.write(`# ztunnel-ts redirect ${action} for ${where}, using ${using}\n${out.script}`);
        return 0;
      }
      io.stdout.write(`${action === 'install' ? 'installed' : 'removed'} capture rules in ${where} using ${using}; IPv${out.families.join(' and IPv')}\n`);
      return 0;
    } catch (err) {
      if (err instanceof RedirectError) {
        io.stderr.write(`ztunnel-ts redirect ${action}: ${err.message}\n`);
        return err.code === 'INVALID' ? 2 : 1;
      }
      throw err;
    }
  },
};
