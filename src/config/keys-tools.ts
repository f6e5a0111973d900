import { key, p } from './key';
import { COMMON_KEYS } from './keys-common';

/** `ztunnel-ts redirect install|remove`: capture rules (see src/redirect). */
export const REDIRECT_KEYS = {
  netns: key({ env: 'REDIRECT_NETNS', doc: 'named network namespace (ip netns) of the pod to capture; empty = current namespace', default: '', parse: p.optString }),
  dryRun: key({ env: 'REDIRECT_DRY_RUN', doc: 'print the exact rules instead of applying them', default: 'false', parse: p.bool, bare: true }),
  proxyUid: key({ env: 'REDIRECT_PROXY_UID', doc: "exclude the proxy's own traffic by owner uid (in addition to the packet mark)", default: '', parse: p.optString }),
  packetMark: key({ env: 'PACKET_MARK', doc: 'mark carried by proxy sockets', default: '1337', parse: p.intOrHex(0, 0xffffffff) }),
  excludePorts: key({ env: 'REDIRECT_EXCLUDE_PORTS', doc: 'extra inbound ports never captured (15020, 15021, 15090 always are)', default: '', parse: p.portList }),
  excludeOutboundCidrs: key({ env: 'REDIRECT_EXCLUDE_CIDRS', doc: 'outbound destinations never captured', default: '', parse: p.list }),
  probeSources: key({ env: 'REDIRECT_PROBE_SOURCES', doc: 'source IPs/CIDRs whose inbound TCP is never captured (kubelet probe SNAT; set the node IP, or empty, where that SNAT breaks the CNI)', default: '169.254.7.127,fd16:9254:7127:1337:ffff:ffff:ffff:ffff', parse: p.list }),
  backend: key({ env: 'REDIRECT_IPTABLES', doc: 'rule backend: auto, nft (iptables-nft), legacy (iptables-legacy) or nftables (the nft tool, for hosts without iptables)', default: 'auto', parse: p.oneOf('auto', 'nft', 'legacy', 'nftables') }),
  outboundPort: key({ env: 'REDIRECT_OUTBOUND_PORT', doc: 'outbound capture port', default: '15001', parse: p.int(1, 65535) }),
  inboundPlaintextPort: key({ env: 'REDIRECT_INBOUND_PORT', doc: 'inbound plaintext capture port', default: '15006', parse: p.int(1, 65535) }),
  origSrc: key({ env: 'ENABLE_ORIG_SRC', doc: "route replies to the proxy's original-source dials back to it (mangle connmark 0x111, ip rule fwmark 0x111/0xfff lookup 100, local default route via lo in table 100), as the node's ENABLE_ORIG_SRC detection expects; false leaves them out; remove always deletes them", default: 'true', parse: p.bool, bare: true }),
  dnsCapture: key({ env: 'DNS_CAPTURE', doc: "also send the pod's DNS (UDP and TCP port 53) to the node proxy's DNS proxy on :15053, except the proxy's own marked queries (istio-cni's DNS capture); the node proxy needs DNS_CAPTURE=true too", default: 'false', parse: p.bool, bare: true }),
  hbonePort: key({ env: 'REDIRECT_HBONE_PORT', doc: 'inbound HBONE port (reached directly, never redirected)', default: '15008', parse: p.int(1, 65535) }),
} as const;

/** The redirect keys that shape the rules (the agent picks each pod's namespace itself and never dry-runs). */
function agentRuleKeys(): Omit<typeof REDIRECT_KEYS, 'netns' | 'dryRun'> {
  const { netns: _netns, dryRun: _dryRun, ...rules } = REDIRECT_KEYS;
  return rules;
}

/** `ztunnel-ts agent`: the stand-in for istio-cni's node agent (serves ZDS, installs in-pod rules). */
export const AGENT_KEYS = {
  logLevel: COMMON_KEYS.logLevel,
  logFormat: COMMON_KEYS.logFormat,
  ...agentRuleKeys(),
  inpodUds: key({ env: 'INPOD_UDS', doc: 'ZDS socket the node proxies connect to', default: '/var/run/ztunnel/ztunnel.sock', parse: p.string }),
  pods: key({ env: 'AGENT_PODS', doc: 'pods file (YAML: pods: [{uid, name, namespace, serviceAccount, netns}]), watched; netns is an ip-netns name or /proc/<pid>/ns/net', default: '', parse: p.optString }),
  redirect: key({ env: 'AGENT_REDIRECT', doc: 'install the in-pod capture rules in each enrolled pod (and remove them on un-enrol)', default: 'true', parse: p.bool }),
} as const;

/** `ztunnel-ts mesh <file>`: the local loopback mesh. */
export const MESH_KEYS = {
  logLevel: COMMON_KEYS.logLevel,
  logFormat: key({ env: 'LOG_FORMAT', doc: 'json or plain (default for the mesh: plain)', default: 'plain', parse: p.oneOf('json', 'plain') }),
  stateDir: key({ env: 'MESH_STATE_DIR', doc: 'where the mesh writes its CA, tokens and per-node config', default: '', parse: p.optString }),
  selfCheckOnly: key({ env: 'MESH_SELF_CHECK_ONLY', doc: 'run the self-check, then exit (0 when it passed)', default: 'false', parse: p.bool, bare: true }),
} as const;

/** `ztunnel-ts explain`: which route and which policy decide a connection. */
export const EXPLAIN_KEYS = {
  logFormat: key({ env: 'LOG_FORMAT', doc: 'output: plain (human-readable, default) or json', default: 'plain', parse: p.oneOf('json', 'plain') }),
  localXdsPath: key({ env: 'LOCAL_XDS_PATH', doc: 'ztunnel local config file', default: '', parse: p.optString }),
  localXds: key({ env: 'LOCAL_XDS', doc: 'the same local config inline (YAML)', default: '', parse: p.optString }),
  network: key({ env: 'NETWORK', doc: 'network of the source', default: '', parse: p.string }),
  source: key({ env: 'EXPLAIN_SOURCE', doc: 'source IP', default: '', parse: p.string }),
  destination: key({ env: 'EXPLAIN_DESTINATION', doc: 'destination ip:port', default: '', parse: p.string }),
  identity: key({ env: 'EXPLAIN_IDENTITY', doc: "source SPIFFE identity (default: the source workload's; 'none' = plaintext, no identity)", default: '', parse: p.optString }),
} as const;
