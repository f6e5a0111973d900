import { loadConfig, type ConfigIssue } from './load';
import type { ConfigOf, Env } from './key';
import { NODE_KEYS } from './keys-node';
import { formatListenAddr, type ListenAddr } from '../util/socket-addr';

export type NodeConfig = ConfigOf<typeof NODE_KEYS>;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Cross-field rules ztunnel also enforces, plus ours (admin on loopback only). */
export function nodeCrossChecks(c: Partial<NodeConfig>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (c.localXdsPath && c.localXds) issues.push({ key: 'LOCAL_XDS', value: '<inline yaml>', expected: 'only one of LOCAL_XDS_PATH and LOCAL_XDS' });
  if (c.adminAddr && (c.adminAddr.host === null || !(LOOPBACK.has(c.adminAddr.host) || c.adminAddr.host.startsWith('127.')))) {
    issues.push({ key: 'ADMIN_ADDR', value: formatListenAddr(c.adminAddr), expected: 'a loopback address (the admin server must not be reachable from the network)' });
  }
  for (const [k, a] of [['STATS_ADDR', c.statsAddr], ['READINESS_ADDR', c.readinessAddr]] as const) {
    if (a && a.host === null) issues.push({ key: k, value: formatListenAddr(a), expected: 'an address with a host (e.g. [::]:15020)' });
  }
  if (c.dnsCapture && c.xdsOnDemand) issues.push({ key: 'DNS_CAPTURE', value: 'true', expected: 'DNS_CAPTURE=false while XDS_ON_DEMAND=true (the DNS proxy needs every Service in the state, as in ztunnel)' });
  return issues;
}

export function loadNodeConfig(env: Env, argv: readonly string[]): { config: NodeConfig; positionals: readonly string[] } {
  const loaded = loadConfig(NODE_KEYS, env, argv, nodeCrossChecks);
  return { config: ipv4Only(loaded.config), positionals: loaded.positionals };
}

/** IPV6_ENABLED=false as ztunnel reads it: wildcard listeners bind 0.0.0.0, never [::]. */
function ipv4Only(c: NodeConfig): NodeConfig {
  if (c.ipv6Enabled) return c;
  const v4 = <A extends ListenAddr | null>(a: A): A => (a !== null && a.host === '::' ? (Object.freeze({ ...a, host: '0.0.0.0' }) as unknown as A) : a);
  return Object.freeze({
    ...c,
    adminAddr: v4(c.adminAddr),
    statsAddr: v4(c.statsAddr),
    readinessAddr: v4(c.readinessAddr),
    outboundAddr: v4(c.outboundAddr),
    inboundPlaintextAddr: v4(c.inboundPlaintextAddr),
    inboundAddr: v4(c.inboundAddr),
    socks5Addr: v4(c.socks5Addr),
    dnsProxyAddr: v4(c.dnsProxyAddr),
  });
}
