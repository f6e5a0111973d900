import { loadConfig, type ConfigIssue } from './load';
import type { ConfigOf, Env } from './key';
import { NODE_KEYS } from './keys-node';
import { formatListenAddr } from '../util/socket-addr';

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
  return issues;
}

export function loadNodeConfig(env: Env, argv: readonly string[]): { config: NodeConfig; positionals: readonly string[] } {
  return loadConfig(NODE_KEYS, env, argv, nodeCrossChecks);
}
