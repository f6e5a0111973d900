/**
 * The in-pod routing that original-source dials need (ENABLE_ORIG_SRC), as ztunnel's
 * in-pod rules set it up. The proxy dials the app from the client's IP, which is not an
 * address of the pod, so the app's replies would leave by the default route. Instead:
 *
 *   mangle PREROUTING: a packet carrying the proxy mark (the proxy's own dial, looped
 *     through lo to the local app) marks its connection: connmark 0x111/0xfff;
 *   mangle OUTPUT: packets of such a connection (the app's replies) get that mark back;
 *   ip rule fwmark 0x111/0xfff → table 100, whose `local 0.0.0.0/0 dev lo` (and `::/0`)
 *     delivers them locally, to the proxy's transparent socket.
 *
 * Pure: rules and commands out; apply.ts runs them.
 */
/** Connection mark of the proxy's original-source connections (ztunnel's value). */
export const ORIG_SRC_CONNMARK = '0x111/0xfff';
/** Routing table that delivers their replies locally (ztunnel's value). */
export const ORIG_SRC_TABLE = '100';
/** The ip rule's priority, just below main (32766) and default (32767). */
export const ORIG_SRC_RULE_PREF = '32764';

type Family = 4 | 6;

const hex8 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** The two nft chains (in the `inet ztunnel` table), as `nft list table` prints them. */
export function nftOrigSrcChains(packetMark: number): string[] {
  const mask = packetMark <= 0xfff ? 0xfff : 0xffffffff;
  return [
    [
      '\tchain mangle-prerouting {',
      '\t\ttype filter hook prerouting priority mangle; policy accept;',
      `\t\tmeta mark & ${hex8(mask)} == ${hex8(packetMark)} ct mark set ct mark & 0xfffff111 | 0x00000111`,
      '\t}',
    ].join('\n'),
    ['\tchain mangle-output {', '\t\ttype route hook output priority mangle; policy accept;', '\t\tct mark & 0x00000fff == 0x00000111 meta mark set ct mark', '\t}'].join('\n'),
  ];
}

const ANY: Readonly<Record<Family, string>> = { 4: '0.0.0.0/0', 6: '::/0' };

/** `ip` arguments (after `ip`) of the policy rule and the local route, per family. */
export function routingArgs(family: Family): { rule: string[]; route: string[] } {
  return {
    rule: [`-${family}`, 'rule', 'add', 'fwmark', ORIG_SRC_CONNMARK, 'pref', ORIG_SRC_RULE_PREF, 'lookup', ORIG_SRC_TABLE],
    route: [`-${family}`, 'route', 'replace', 'local', ANY[family], 'dev', 'lo', 'table', ORIG_SRC_TABLE],
  };
}

/** Deleting them: the rule (repeat while it exists) and the route. */
export function routingRemoveArgs(family: Family): { rule: string[]; route: string[] } {
  return {
    rule: [`-${family}`, 'rule', 'del', 'fwmark', ORIG_SRC_CONNMARK, 'lookup', ORIG_SRC_TABLE],
    route: [`-${family}`, 'route', 'del', 'local', ANY[family], 'dev', 'lo', 'table', ORIG_SRC_TABLE],
  };
}

/** Listing commands for `check`, and what a correct install shows in them. */
export function routingCheck(family: Family): { rule: string[]; route: string[]; ruleLine: RegExp; routeLine: RegExp } {
  return {
    rule: [`-${family}`, 'rule', 'list', 'fwmark', ORIG_SRC_CONNMARK, 'lookup', ORIG_SRC_TABLE],
    route: [`-${family}`, 'route', 'show', 'table', ORIG_SRC_TABLE],
    ruleLine: new RegExp(`fwmark ${ORIG_SRC_CONNMARK} lookup ${ORIG_SRC_TABLE}`),
    routeLine: /^local default dev lo\b/m,
  };
}
