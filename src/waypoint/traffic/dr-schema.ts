import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import { headerName } from '../config/meta';
import type { ObjectMeta } from '../config/types';
import { SUBSET_LABELS } from './labels';
import { duration } from './schema-util';
import type { ConnectionPool, DestinationRule, LoadBalancer, OutlierDetection, Subset, TrafficPolicy } from './types';

const MAX = 2 ** 31 - 1;

/**
 * A DestinationRule spec (networking.istio.io): `host`, `trafficPolicy`
 * (connectionPool, outlierDetection, loadBalancer) and `subsets` by labels, each with
 * an optional trafficPolicy that overrides the rule's per field. Unsupported fields are
 * errors naming what is supported.
 */
export function parseDestinationRuleSpec(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): DestinationRule | undefined {
  const o = r.object(node, path, ['host', 'trafficPolicy', 'subsets']);
  if (!o) return undefined;
  const host = r.string(o.get('host'), o.at('host'), { required: true, owner: node });
  const trafficPolicy = r.isNull(o.get('trafficPolicy')) ? null : parsePolicy(r, o.get('trafficPolicy'), o.at('trafficPolicy'));
  const names = new Set<string>();
  const subsets = r.list(o.get('subsets'), o.at('subsets'), 'subsets', (n, p) => {
    const s = parseSubset(r, n, p);
    if (s && names.has(s.name)) {
      r.error(n, p, `duplicate subset ${JSON.stringify(s.name)}`);
      return undefined;
    }
    if (s) names.add(s.name);
    return s;
  });
  if (host === undefined || trafficPolicy === undefined) return undefined;
  return { meta, host: host.toLowerCase(), trafficPolicy, subsets };
}

function parseSubset(r: YamlReader, n: YNode, p: string): Subset | undefined {
  const o = r.object(n, p, ['name', 'labels', 'trafficPolicy']);
  if (!o) return undefined;
  const name = r.string(o.get('name'), o.at('name'), { required: true, owner: n });
  const labels: Record<string, string> = {};
  for (const e of r.entries(o.get('labels'), o.at('labels'), 'a map of label → value')) {
    if (!SUBSET_LABELS.includes(e.key)) {
      r.error(e.keyNode, `${o.at('labels')}.${e.key}`, `label ${JSON.stringify(e.key)} is not known to the waypoint's workload model; subsets can select on: ${SUBSET_LABELS.join(', ')}`);
      continue;
    }
    const v = r.string(e.value, `${o.at('labels')}.${e.key}`, { def: '' });
    if (v !== undefined) labels[e.key] = v;
  }
  const trafficPolicy = r.isNull(o.get('trafficPolicy')) ? null : parsePolicy(r, o.get('trafficPolicy'), o.at('trafficPolicy'));
  if (name === undefined || trafficPolicy === undefined) return undefined;
  return { name, labels, trafficPolicy };
}

function parsePolicy(r: YamlReader, n: YNode, p: string): TrafficPolicy | undefined {
  const fields = ['connectionPool', 'outlierDetection', 'loadBalancer'];
  const o = r.object(n, p, fields, (k) => (k === 'tls' || k === 'portLevelSettings' || k === 'tunnel' || k === 'proxyProtocol' ? `${k} is not supported by this waypoint (upstream traffic is always HBONE mTLS); supported: ${fields.join(', ')}` : null));
  if (!o) return undefined;
  const connectionPool = r.isNull(o.get('connectionPool')) ? null : parsePool(r, o.get('connectionPool'), o.at('connectionPool'));
  const outlierDetection = r.isNull(o.get('outlierDetection')) ? null : parseOutlier(r, o.get('outlierDetection'), o.at('outlierDetection'));
  const loadBalancer = r.isNull(o.get('loadBalancer')) ? null : parseLb(r, o.get('loadBalancer'), o.at('loadBalancer'));
  if (connectionPool === undefined || outlierDetection === undefined || loadBalancer === undefined) return undefined;
  return { connectionPool, outlierDetection, loadBalancer };
}

function optInt(r: YamlReader, o: NonNullable<ReturnType<YamlReader['object']>>, k: string, min = 1): number | null | undefined {
  return r.isNull(o.get(k)) ? null : r.int(o.get(k), o.at(k), min, MAX, 'a count');
}

function parsePool(r: YamlReader, n: YNode, p: string): ConnectionPool | undefined {
  const o = r.object(n, p, ['tcp', 'http']);
  if (!o) return undefined;
  const tcp = r.isNull(o.get('tcp')) ? null : r.object(o.get('tcp'), o.at('tcp'), ['maxConnections', 'connectTimeout'], (k) => (k === 'tcpKeepalive' || k === 'maxConnectionDuration' || k === 'idleTimeout' ? `tcp.${k} is not supported; supported: maxConnections, connectTimeout` : null));
  const http = r.isNull(o.get('http'))
    ? null
    : r.object(o.get('http'), o.at('http'), ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout'], (k) =>
        k === 'h2UpgradePolicy' || k === 'useClientProtocol' || k === 'maxConcurrentStreams' ? `http.${k} is not supported (the waypoint keeps the client's protocol); supported: http1MaxPendingRequests, http2MaxRequests, maxRequestsPerConnection, maxRetries, idleTimeout` : null,
      );
  if ((!r.isNull(o.get('tcp')) && !tcp) || (!r.isNull(o.get('http')) && !http)) return undefined;
  const maxConnections = tcp ? optInt(r, tcp, 'maxConnections') : null;
  const connectTimeoutMs = tcp ? duration(r, tcp.get('connectTimeout'), tcp.at('connectTimeout')) : null;
  const http1MaxPendingRequests = http ? optInt(r, http, 'http1MaxPendingRequests', 0) : null;
  const http2MaxRequests = http ? optInt(r, http, 'http2MaxRequests') : null;
  const perConn = http ? optInt(r, http, 'maxRequestsPerConnection', 0) : null;
  const maxRetries = http ? optInt(r, http, 'maxRetries', 0) : null;
  const idleTimeoutMs = http ? duration(r, http.get('idleTimeout'), http.at('idleTimeout')) : null;
  if (maxConnections === undefined || connectTimeoutMs === undefined || http1MaxPendingRequests === undefined || http2MaxRequests === undefined || perConn === undefined || maxRetries === undefined || idleTimeoutMs === undefined) return undefined;
  // maxRequestsPerConnection 0 is Istio's "unlimited".
  return { maxConnections, connectTimeoutMs, http1MaxPendingRequests, http2MaxRequests, maxRequestsPerConnection: perConn === 0 ? null : perConn, maxRetries, idleTimeoutMs };
}

/** Istio's defaults: 5 consecutive 5xx, gateway errors off, 10s interval, 30s base ejection, 10% max ejected, 0% min health. */
function parseOutlier(r: YamlReader, n: YNode, p: string): OutlierDetection | undefined {
  const fields = ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent'];
  const o = r.object(n, p, fields, (k) => (k === 'consecutiveErrors' ? 'consecutiveErrors was removed from Istio; use consecutive5xxErrors' : k === 'splitExternalLocalOriginErrors' || k === 'consecutiveLocalOriginFailures' ? `${k} is not supported; supported: ${fields.join(', ')}` : null));
  if (!o) return undefined;
  const c5 = r.int(o.get('consecutive5xxErrors'), o.at('consecutive5xxErrors'), 0, MAX, 'a count', 5);
  const cg = r.int(o.get('consecutiveGatewayErrors'), o.at('consecutiveGatewayErrors'), 0, MAX, 'a count', 0);
  const interval = duration(r, o.get('interval'), o.at('interval'));
  const base = duration(r, o.get('baseEjectionTime'), o.at('baseEjectionTime'));
  const maxPct = r.int(o.get('maxEjectionPercent'), o.at('maxEjectionPercent'), 0, 100, 'a percentage', 10);
  const minHealth = r.int(o.get('minHealthPercent'), o.at('minHealthPercent'), 0, 100, 'a percentage', 0);
  if (c5 === undefined || cg === undefined || interval === undefined || base === undefined || maxPct === undefined || minHealth === undefined) return undefined;
  return { consecutive5xxErrors: c5, consecutiveGatewayErrors: cg, intervalMs: interval ?? 10_000, baseEjectionTimeMs: base ?? 30_000, maxEjectionPercent: maxPct, minHealthPercent: minHealth };
}

function parseLb(r: YamlReader, n: YNode, p: string): LoadBalancer | undefined {
  const o = r.object(n, p, ['simple', 'consistentHash'], (k) => (k === 'localityLbSetting' || k === 'warmup' || k === 'warmupDurationSecs' ? `${k} is not supported (locality comes from the Service's traffic distribution); supported: simple, consistentHash` : null));
  if (!o) return undefined;
  const hasSimple = !r.isNull(o.get('simple'));
  if (hasSimple === !r.isNull(o.get('consistentHash'))) {
    r.error(n, p, 'exactly one of simple, consistentHash must be set');
    return undefined;
  }
  if (hasSimple) {
    const v = r.oneOf(o.get('simple'), o.at('simple'), ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'LEAST_CONN', 'PASSTHROUGH', 'UNSPECIFIED'] as const);
    if (v === undefined) return undefined;
    if (v === 'PASSTHROUGH') {
      r.error(o.get('simple'), o.at('simple'), 'PASSTHROUGH is not supported by the waypoint; use ROUND_ROBIN, LEAST_REQUEST or RANDOM');
      return undefined;
    }
    // LEAST_CONN is Istio's deprecated spelling of LEAST_REQUEST; UNSPECIFIED is the default, round robin.
    return { kind: 'simple', simple: v === 'LEAST_CONN' ? 'LEAST_REQUEST' : v === 'UNSPECIFIED' ? 'ROUND_ROBIN' : v };
  }
  const h = r.object(o.get('consistentHash'), o.at('consistentHash'), ['httpHeaderName', 'httpCookie', 'useSourceIp'], (k) =>
    k === 'httpQueryParameterName' ? 'httpQueryParameterName is not supported; hash on httpHeaderName, httpCookie or useSourceIp' : k === 'ringHash' || k === 'maglev' || k === 'minimumRingSize' ? `${k} is not supported (endpoints are chosen by rendezvous hashing, which needs no ring)` : null,
  );
  if (!h) return undefined;
  const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp'] as const).filter((k) => !r.isNull(h.get(k)));
  if (keys.length !== 1) {
    r.error(h.node, o.at('consistentHash'), 'exactly one of httpHeaderName, httpCookie, useSourceIp must be set');
    return undefined;
  }
  if (keys[0] === 'httpHeaderName') {
    const name = headerName(r, h, 'httpHeaderName');
    return name === undefined ? undefined : { kind: 'hash', by: { header: name } };
  }
  if (keys[0] === 'httpCookie') {
    const c = r.object(h.get('httpCookie'), h.at('httpCookie'), ['name'], (k) => (k === 'ttl' || k === 'path' ? `httpCookie.${k} is not supported: the waypoint hashes on the cookie when the client sends it and never generates one` : null));
    const name = c ? r.string(c.get('name'), c.at('name'), { required: true, owner: c.node }) : undefined;
    return name === undefined ? undefined : { kind: 'hash', by: { cookie: name } };
  }
  const on = r.bool(h.get('useSourceIp'), h.at('useSourceIp'), false);
  if (on === false) r.error(h.get('useSourceIp'), h.at('useSourceIp'), 'useSourceIp: false selects nothing to hash on; set it true or use another key');
  return on ? { kind: 'hash', by: { sourceIp: true } } : undefined;
}
