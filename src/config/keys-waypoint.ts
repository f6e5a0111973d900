import { key, p } from './key';
import { COMMON_KEYS } from './keys-common';
import { HBONE_TRANSPORT_KEYS, IDENTITY_KEYS, NODE_KEYS, XDS_CLIENT_KEYS } from './keys-node';

const N = NODE_KEYS;

/**
 * Keys of the waypoint (one Deployment per service account, Istio's istio-waypoint
 * Gateway class). State and transport keys keep the node proxy's names and meaning; the
 * waypoint's own are its identity (POD_NAMESPACE + SERVICE_ACCOUNT, from the CA without
 * impersonation), the Gateway it is (WAYPOINT_NAME), what it serves (WAYPOINT_FOR) and
 * its routes and L7 policies (WAYPOINT_CONFIG_PATH). Workloads, services and policies come
 * from the node's sources: istiod's delta xDS (XDS_* keys, ISTIO_META_*) and/or a local file.
 */
export const WAYPOINT_KEYS = {
  ...COMMON_KEYS,
  ...IDENTITY_KEYS,
  ...HBONE_TRANSPORT_KEYS,
  ...XDS_CLIENT_KEYS,
  inboundAddr: key({ env: 'INBOUND_ADDR', doc: 'HBONE (mTLS HTTP/2 CONNECT) listener', default: '[::]:15008', parse: p.listen }),
  instanceIp: key({ env: 'INSTANCE_IP', doc: "this waypoint pod's IP: its workload in the state, and the source address of its upstream connections", default: '', parse: p.string }),
  podNamespace: key({ env: 'POD_NAMESPACE', doc: 'namespace of the waypoint (its identity and its Gateway)', default: 'default', parse: p.string }),
  serviceAccount: key({ env: 'SERVICE_ACCOUNT', doc: 'service account of the waypoint: its identity spiffe://<td>/ns/<ns>/sa/<sa>', default: 'waypoint', parse: p.string }),
  waypointName: key({ env: 'WAYPOINT_NAME', doc: 'name of the waypoint Gateway that routes (parentRefs) and policies (targetRefs) attach to', default: 'waypoint', parse: p.string }),
  waypointFor: key({ env: 'WAYPOINT_FOR', doc: "traffic served (the Gateway's istio.io/waypoint-for): service, workload or all", default: 'service', parse: p.oneOf('service', 'workload', 'all') }),
  waypointConfigPath: key({ env: 'WAYPOINT_CONFIG_PATH', doc: 'HTTPRoute / GRPCRoute / AuthorizationPolicy YAML: a file or a directory of *.yaml; reloaded on change', default: '', parse: p.optString }),
  protocolDetectionTimeout: key({ env: 'PROTOCOL_DETECTION_TIMEOUT', doc: 'how long to wait for the first bytes of a tunnel before treating it as opaque TCP', default: '1s', parse: p.duration(1) }),
  jwksRefreshInterval: key({ env: 'PILOT_JWT_PUB_KEY_REFRESH_INTERVAL', doc: 'how often the JWKS of each RequestAuthentication jwksUri (or OpenID discovery) is fetched again (istiod\'s name); a failed fetch keeps the last good keys', default: '20m', parse: p.duration(100) }),
  tracesEndpoint: key({
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    doc: 'OTLP/HTTP traces URL (e.g. http://otel-collector.observability:4318/v1/traces): a span per request is exported there; empty = tracing off',
    default: '',
    parse: (raw: string) => (raw === '' ? { ok: true as const, value: null } : /^https?:\/\/[^/\s]+/.test(raw) ? { ok: true as const, value: raw } : { ok: false as const, expected: 'an http:// or https:// OTLP traces URL, or empty' }),
  }),
  traceExportDelay: key({ env: 'OTEL_BSP_SCHEDULE_DELAY', doc: 'milliseconds spans are batched before an OTLP export (OpenTelemetry\'s batch span processor setting)', default: '5000', parse: p.int(1, 600_000) }),
  tracingSampling: key({
    env: 'TRACING_SAMPLING',
    doc: "percentage of new traces sampled when a request brings no traceparent (Istio's tracing sampling); an incoming traceparent's sampled flag is followed",
    default: '1',
    parse: (raw: string) => (/^\d+(\.\d+)?$/.test(raw.trim()) && Number(raw) <= 100 ? { ok: true as const, value: Number(raw) } : { ok: false as const, expected: 'a percentage from 0 to 100 (e.g. 1 or 0.5)' }),
  }),
  localXdsPath: N.localXdsPath,
  localXds: N.localXds,
  network: N.network,
  clusterDomain: N.clusterDomain,
} as const;
