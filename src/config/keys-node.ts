import { key, p, type Env, type ParseResult } from './key';
import { COMMON_KEYS } from './keys-common';
import { parseGrpcHeaders } from './headers';
import { MAX_WORKER_THREADS, parseWorkerThreads } from './worker-threads';
import { parseUpstreams } from '../dns/upstreams';
import type { Upstream } from '../dns/forwarder';

/** Collected `NAME=value` lines (a prefix key's raw form) → name → value. */
function prefixLines(raw: string): [string, string][] {
  return raw === '' ? [] : raw.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

/** ISTIO_META_<NAME>: node metadata strings, sent to istiod with the prefix removed. */
const metaStrings = (raw: string): ParseResult<Readonly<Record<string, string>>> => ({ ok: true, value: Object.fromEntries(prefixLines(raw)) });

/** ISTIO_METAJSON_<NAME>: each value must itself be JSON (it is sent as a structured value). */
const metaJson = (raw: string): ParseResult<Readonly<Record<string, unknown>>> => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of prefixLines(raw)) {
    try {
      out[k] = JSON.parse(v);
    } catch {
      return { ok: false, expected: `ISTIO_METAJSON_${k}: a JSON value (got ${JSON.stringify(v)})` };
    }
  }
  return { ok: true, value: out };
};

/** DNS_UPSTREAMS: comma-separated `ip`, `ip:port` or `[ipv6]:port`. */
const upstreamList = (raw: string): ParseResult<readonly Upstream[]> => {
  const r = parseUpstreams(raw.split(',').filter((x) => x.trim() !== ''));
  return r.ok ? { ok: true, value: r.value } : { ok: false, expected: `nameservers as ip, ip:port or [ipv6]:port (bad entry ${JSON.stringify(r.bad)})` };
};

const caDefault = (e: Env): string => (e['KUBERNETES_SERVICE_HOST'] ? 'https://istiod.istio-system.svc:15012' : 'https://localhost:15012');

/** Keys the CA client and certificate manager read (node and waypoint). */
export const CA_CLIENT_KEYS = {
  caAddress: key({ env: 'CA_ADDRESS', doc: 'Istio-compatible CA (gRPC CreateCertificate over TLS)', default: caDefault, parse: p.string }),
  caRootCa: key({ env: 'CA_ROOT_CA', doc: 'PEM file (or inline PEM) that verifies the CA serving certificate', default: './var/run/secrets/istio/root-cert.pem', parse: p.string }),
  altCaHostname: key({ env: 'ALT_CA_HOSTNAME', doc: 'host name to verify the CA certificate against instead of the URL host', default: '', parse: p.optString }),
  authToken: key({ env: 'AUTH_TOKEN', doc: 'bearer token for the CA: a file path (re-read every call) or a literal token', default: './var/run/secrets/tokens/istio-token', parse: p.string, secret: true }),
  clusterId: key({ env: 'CLUSTER_ID', doc: 'cluster id sent to the CA (ISTIO_META_CLUSTER_ID wins)', default: (e) => e['ISTIO_META_CLUSTER_ID'] ?? 'Kubernetes', parse: p.string }),
  secretTtl: key({ env: 'SECRET_TTL', doc: 'requested workload certificate validity', default: '24h', parse: p.duration(1000) }),
  caHeaders: key({ env: 'CA_HEADER_', prefix: true, secret: true, doc: 'extra gRPC metadata on every CA call: CA_HEADER_X_TENANT=a sends x_tenant: a', default: '', parse: parseGrpcHeaders('CA_HEADER_') }),
} as const;

/**
 * The CA client keys plus TRUST_DOMAIN: the trust domain of the waypoint's own identity,
 * and for the node proxy the trust domain of enrolled pods it knows only from the node
 * agent (in-pod mode, before the state names them).
 */
export const IDENTITY_KEYS = {
  ...CA_CLIENT_KEYS,
  trustDomain: key({ env: 'TRUST_DOMAIN', doc: "trust domain of this proxy's own identity (waypoint) or of enrolled pods not yet in the state (node, in-pod)", default: 'cluster.local', parse: p.string }),
} as const;

/**
 * The HBONE transport and socket keys the node proxy and the waypoint share (same env
 * names, same meaning): both spread this set, so transportTuning reads one definition.
 */
export const HBONE_TRANSPORT_KEYS = {
  poolMaxStreams: key({ env: 'POOL_MAX_STREAMS_PER_CONNECTION', doc: 'HBONE streams per pooled connection (capped by the peer SETTINGS)', default: '100', parse: p.int(1, 10000) }),
  poolUnusedReleaseTimeout: key({ env: 'POOL_UNUSED_RELEASE_TIMEOUT', doc: 'release a pooled HBONE connection unused this long', default: '5m', parse: p.duration(1) }),
  h2StreamWindow: key({ env: 'HTTP2_STREAM_WINDOW_SIZE', doc: 'HTTP/2 stream flow-control window (bytes)', default: String(4 * 1024 * 1024), parse: p.int(65535, 2 ** 31 - 1) }),
  h2ConnectionWindow: key({ env: 'HTTP2_CONNECTION_WINDOW_SIZE', doc: 'HTTP/2 connection flow-control window (bytes)', default: String(16 * 1024 * 1024), parse: p.int(65535, 2 ** 31 - 1) }),
  h2FrameSize: key({ env: 'HTTP2_FRAME_SIZE', doc: 'HTTP/2 max frame size (bytes)', default: String(1024 * 1024), parse: p.int(16384, 16777215) }),
  keepaliveEnabled: key({ env: 'KEEPALIVE_ENABLED', doc: 'TCP keepalive on proxied sockets', default: 'true', parse: p.bool }),
  keepaliveTime: key({ env: 'KEEPALIVE_TIME', doc: 'TCP keepalive idle time', default: '180s', parse: p.duration(1000) }),
  connectTimeout: key({ env: 'CONNECT_TIMEOUT', doc: 'TCP connect timeout to peers and apps (ztunnel fixes 10s)', default: '10s', parse: p.duration(1) }),
  handshakeTimeout: key({ env: 'HANDSHAKE_TIMEOUT', doc: 'inbound TLS handshake timeout on 15008', default: '10s', parse: p.duration(1) }),
  headersTimeout: key({ env: 'FIRST_HEADERS_TIMEOUT', doc: 'time allowed for the first CONNECT after the handshake', default: '10s', parse: p.duration(1) }),
  hbonePingInterval: key({ env: 'HBONE_PING_INTERVAL', doc: 'HTTP/2 PING liveness on every HBONE connection, both sides (ztunnel: 10s; 0 = off)', default: '10s', parse: p.duration(0) }),
  hbonePingTimeout: key({ env: 'HBONE_PING_TIMEOUT', doc: 'an HBONE connection whose PING is unanswered this long is dropped and its tunnels reset (ztunnel: 20s)', default: '20s', parse: p.duration(1) }),
  maxStreamsPerPeer: key({ env: 'INBOUND_MAX_STREAMS', doc: 'max concurrent CONNECT streams per inbound HBONE connection (advertised)', default: '200', parse: p.int(1, 100000) }),
  maxPendingHandshakesPerPeer: key({ env: 'INBOUND_MAX_PENDING_HANDSHAKES_PER_PEER', doc: 'cap on TLS handshakes in progress from one peer IP', default: '64', parse: p.int(1, 100000) }),
  maxControlFrames: key({ env: 'INBOUND_MAX_CONTROL_FRAMES', doc: 'SETTINGS/PING frames one HBONE connection may send per 10 s before it is dropped (flood defence)', default: '1000', parse: p.int(10, 1_000_000) }),
  maxPreAcceptBytes: key({ env: 'INBOUND_MAX_PRE_ACCEPT_BYTES', doc: 'bytes one HBONE connection may park in streams not yet answered (default = connection window)', default: String(16 * 1024 * 1024), parse: p.int(65535, 2 ** 31 - 1) }),
} as const;

/**
 * The keys of the xDS client (istiod's delta xDS) and of how the proxy names itself to it:
 * the node proxy and the waypoint both spread this set, so the one xDS source reads one
 * definition of each.
 */
export const XDS_CLIENT_KEYS = {
  xdsAddress: key({
    env: 'XDS_ADDRESS',
    doc: "istiod's delta xDS (https:// optional); in Kubernetes istiod.istio-system.svc:15012, elsewhere off unless set. With LOCAL_XDS_PATH too, the file is a second source",
    default: (e) => (e['KUBERNETES_SERVICE_HOST'] ? 'https://istiod.istio-system.svc:15012' : ''),
    parse: p.optString,
  }),
  xdsRootCa: key({ env: 'XDS_ROOT_CA', doc: 'PEM file (re-read on every connect), inline PEM, or SYSTEM: verifies the xDS server certificate', default: './var/run/secrets/istio/root-cert.pem', parse: p.string }),
  altXdsHostname: key({ env: 'ALT_XDS_HOSTNAME', doc: 'host name to verify the xDS server certificate against instead of the URL host', default: '', parse: p.optString }),
  xdsHeaders: key({ env: 'XDS_HEADER_', prefix: true, secret: true, doc: 'extra gRPC metadata on the xDS stream: XDS_HEADER_X_TENANT=a sends x_tenant: a', default: '', parse: parseGrpcHeaders('XDS_HEADER_') }),
  proxyMetadata: key({ env: 'ISTIO_META_', prefix: true, doc: 'node metadata sent to istiod with the prefix removed (ISTIO_META_CLUSTER_ID=c1 → CLUSTER_ID)', default: '', parse: metaStrings }),
  proxyMetadataJson: key({ env: 'ISTIO_METAJSON_', prefix: true, doc: 'node metadata sent to istiod as structured JSON values', default: '', parse: metaJson }),
  podName: key({ env: 'POD_NAME', doc: "this proxy's pod (downward API): its xDS node id and metadata", default: '', parse: p.string }),
  nodeName: key({ env: 'NODE_NAME', doc: 'the node this proxy runs on (downward API), sent to istiod; the node proxy serves its workloads (listeners, prefetched certificates)', default: '', parse: p.string }),
} as const;

/** Keys of the node proxy (DaemonSet role). Names follow ztunnel's src/config.rs. */
export const NODE_KEYS = {
  ...COMMON_KEYS,
  ...IDENTITY_KEYS,
  ...HBONE_TRANSPORT_KEYS,
  ...XDS_CLIENT_KEYS,
  outboundAddr: key({ env: 'OUTBOUND_ADDR', doc: 'outbound capture listener (host-less = per local workload IP)', default: ':15001', parse: p.optListen }),
  inboundPlaintextAddr: key({ env: 'INBOUND_PLAINTEXT_ADDR', doc: 'inbound plaintext capture listener', default: ':15006', parse: p.optListen }),
  inboundAddr: key({ env: 'INBOUND_ADDR', doc: 'inbound HBONE (mTLS HTTP/2 CONNECT) listener', default: ':15008', parse: p.optListen }),
  socks5Addr: key({ env: 'SOCKS5_ADDR', doc: "SOCKS5 explicit outbound listener; off unless set, or unless ztunnel's switch UNSTABLE_ENABLE_SOCKS5=true (then 127.0.0.1:15080)", default: (e) => (e['UNSTABLE_ENABLE_SOCKS5'] === 'true' ? '127.0.0.1:15080' : ''), parse: p.optListen }),
  localXdsPath: key({ env: 'LOCAL_XDS_PATH', doc: 'ztunnel local config file (workloads, services, policies); reloaded on change', default: '', parse: p.optString }),
  localXds: key({ env: 'LOCAL_XDS', doc: 'the same local config inline (YAML)', default: '', parse: p.optString }),
  network: key({ env: 'NETWORK', doc: 'network of this node', default: '', parse: p.string }),
  clusterDomain: key({ env: 'CLUSTER_DOMAIN', doc: 'Kubernetes cluster domain: SOCKS5 names name.ns and name.ns.svc resolve as name.ns.svc.<domain>', default: 'cluster.local', parse: p.string }),
  idleTimeout: key({ env: 'IDLE_TIMEOUT', doc: 'close a proxied connection idle this long (0 = never)', default: '0', parse: p.duration(0) }),
  localWorkloadWait: key({ env: 'WORKLOAD_WAIT_TIMEOUT', doc: 'how long an outbound connection from an unknown source IP waits for its workload to appear in the state before it is refused (UNKNOWN_SOURCE)', default: '5s', parse: p.duration(0) }),
  accessLogUpdateInterval: key({ env: 'ACCESS_LOG_UPDATE_INTERVAL', doc: 'long-lived connections log bytes this often (0 = only at close)', default: '60s', parse: p.duration(0) }),
  packetMark: key({ env: 'PACKET_MARK', doc: 'SO_MARK on the proxy sockets so capture rules skip them', default: '1337', parse: p.intOrHex(0, 0xffffffff) }),
  enableOrigSrc: key({ env: 'ENABLE_ORIG_SRC', doc: "inbound dials to the app keep the client's IP (IP_TRANSPARENT: native addon + CAP_NET_ADMIN; capture rules with --enable-orig-src route replies back); unset = on when IP_TRANSPARENT is permitted", default: '', parse: p.optBool }),
  localhostAppTunnel: key({ env: 'LOCALHOST_APP_TUNNEL', doc: "in-pod mode: a workload's PROXY application tunnel is dialled at the pod's loopback (127.0.0.1 / ::1), so only the proxy reaches that port; the client's address is in the PROXY header", default: 'true', parse: p.bool }),
  ipv6Enabled: key({ env: 'IPV6_ENABLED', doc: 'false: every [::] listen address binds 0.0.0.0 instead (IPv4 only)', default: 'true', parse: p.bool }),
  inpodEnabled: key({ env: 'INPOD_ENABLED', doc: 'in-pod mode: one node proxy serves every pod the node agent (istio-cni) enrols over ZDS, with listeners inside each pod network namespace; host-less listener addresses then mean "this port in every enrolled pod"', default: 'false', parse: p.bool }),
  inpodUds: key({ env: 'INPOD_UDS', doc: "the node agent's ZDS socket (in-pod mode)", default: '/var/run/ztunnel/ztunnel.sock', parse: p.string }),
  inpodPortReuse: key({ env: 'INPOD_PORT_REUSE', doc: 'SO_REUSEPORT on in-pod listeners, so a new node proxy takes over while the old one drains (rolling update)', default: 'true', parse: p.bool }),
  workerThreads: key({
    env: 'ZTUNNEL_WORKER_THREADS',
    doc: 'data-path threads in the node process (the main thread, which also owns the listeners, state, certificates, xDS, ZDS and admin, plus worker threads; accepted connections are spread over them round-robin): a number, 0 = one per CPU, or N% of the CPUs; unset = one per CPU of the CPU limit (ZTUNNEL_CPU_LIMIT or the cgroup quota), else a quarter of the cores and at least 2. Needs the native addon (1 without it)',
    default: '',
    parse: (raw) => {
      const spec = parseWorkerThreads(raw);
      return spec ? { ok: true, value: spec } : { ok: false, expected: `a thread count from 0 to ${MAX_WORKER_THREADS}, a percentage of the CPUs (50%), or empty` };
    },
  }),
  cpuLimit: key({
    env: 'ZTUNNEL_CPU_LIMIT',
    doc: 'the CPUs this node proxy may use (1.5 = one and a half), for sizing ZTUNNEL_WORKER_THREADS; unset = the cgroup CPU quota, if any',
    default: '',
    parse: (raw) => {
      const v = raw.trim();
      if (v === '') return { ok: true, value: null };
      const n = Number(v);
      return /^\d+(\.\d+)?$/.test(v) && n > 0 ? { ok: true, value: n } : { ok: false, expected: 'a positive number of CPUs (2, 0.5) or empty' };
    },
  }),
  podNamespace: key({ env: 'POD_NAMESPACE', doc: 'downward API', default: '', parse: p.string }),
  instanceIp: key({ env: 'INSTANCE_IP', doc: 'downward API', default: '', parse: p.string }),
  xdsOnDemand: key({ env: 'XDS_ON_DEMAND', doc: 'fetch Address resources only when a connection needs one (bounded wait), instead of all of them', default: 'false', parse: p.bool }),
  xdsOnDemandTimeout: key({ env: 'XDS_ON_DEMAND_TIMEOUT', doc: 'how long a connection waits for an on-demand Address answer', default: '5s', parse: p.duration(1) }),
  dnsCapture: key({ env: 'DNS_CAPTURE', doc: "DNS proxy: answer mesh names and forward the rest on DNS_PROXY_ADDR (ztunnel's proxy metadata DNS_CAPTURE; ISTIO_META_DNS_CAPTURE is read when unset); pair with `redirect install --dns-capture`", default: (e) => e['ISTIO_META_DNS_CAPTURE'] ?? 'false', parse: p.bool }),
  dnsProxyAddr: key({ env: 'DNS_PROXY_ADDR', doc: 'DNS proxy listener, UDP and TCP (host-less = in each pod on 127.0.0.1 and ::1 with INPOD_ENABLED, else on every local workload IP)', default: ':15053', parse: p.listen }),
  dnsResolvConf: key({ env: 'DNS_RESOLV_CONF', doc: 'where the nameservers the DNS proxy forwards to are read (its search list is not used)', default: '/etc/resolv.conf', parse: p.string }),
  dnsUpstreams: key({ env: 'DNS_UPSTREAMS', doc: 'nameservers to forward to instead of those of DNS_RESOLV_CONF: ip, ip:port or [ipv6]:port, comma-separated', default: '', parse: upstreamList }),
  dnsForwardTimeout: key({ env: 'DNS_FORWARD_TIMEOUT', doc: 'how long the DNS proxy waits for each upstream (per transport) before trying the next or answering SERVFAIL', default: '5s', parse: p.duration(1) }),
  preferedServiceNamespace: key({ env: 'PREFERED_SERVICE_NAMESPACE', doc: "ztunnel's setting (spelled as ztunnel does): among Services sharing a hostname, the DNS proxy prefers the client's namespace, then a canonical one, then this namespace", default: '', parse: p.optString }),
} as const;
