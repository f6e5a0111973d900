import { loadConfig, type ConfigIssue } from './load';
import type { ConfigOf, Env } from './key';
import { WAYPOINT_KEYS } from './keys-waypoint';
import { nodeCrossChecks } from './node-config';

export type WaypointConfig = ConfigOf<typeof WAYPOINT_KEYS>;

/** The node's rules (admin on loopback, one of LOCAL_XDS_PATH/LOCAL_XDS), plus: the listener needs a host. */
export function waypointCrossChecks(c: Partial<WaypointConfig>): ConfigIssue[] {
  const issues = nodeCrossChecks(c);
  if (c.inboundAddr && c.inboundAddr.host === null) issues.push({ key: 'INBOUND_ADDR', value: `:${c.inboundAddr.port}`, expected: 'an address with a host (e.g. [::]:15008 or the pod IP)' });
  return issues;
}

export function loadWaypointConfig(env: Env, argv: readonly string[]): { config: WaypointConfig; positionals: readonly string[] } {
  return loadConfig(WAYPOINT_KEYS, env, argv, waypointCrossChecks);
}
