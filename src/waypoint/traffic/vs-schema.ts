import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import type { ObjectMeta } from '../config/types';
import { GRPC_CODES, duration, percentage, stringMatch } from './schema-util';
import type { FaultPolicy, IstioStringMatch, RetryOn, RetryPolicy, VirtualService, VsDestination, VsHttpRoute, VsMatch } from './types';

const RETRY_ON: readonly RetryOn[] = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'];
const HTTP_ROUTE_FIELDS = ['name', 'match', 'route', 'retries', 'timeout', 'fault'];
const UNSUPPORTED_HTTP = new Set(['redirect', 'directResponse', 'delegate', 'rewrite', 'headers', 'mirror', 'mirrors', 'mirrorPercentage', 'corsPolicy']);
const MATCH_FIELDS = ['name', 'uri', 'ignoreUriCase', 'method', 'authority', 'headers', 'withoutHeaders', 'queryParams', 'port', 'sourceNamespace'];
/** Envoy's default retry back-off base interval. */
export const DEFAULT_BACKOFF_MS = 25;

/**
 * A VirtualService spec (networking.istio.io): `hosts` and `http` routes with match,
 * weighted destinations (host, subset, port), retries, timeout and fault. Fields this
 * waypoint does not implement are errors that say what is supported.
 */
export function parseVirtualServiceSpec(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): VirtualService | undefined {
  const o = r.object(node, path, ['hosts', 'gateways', 'http'], (k) => (k === 'tcp' || k === 'tls' ? `${k} routes are not supported by the waypoint (it routes HTTP); supported fields: hosts, gateways, http` : null));
  if (!o) return undefined;
  const hosts = r.list(o.get('hosts'), o.at('hosts'), 'hosts', (n, p) => r.string(n, p, { required: true })?.toLowerCase());
  if (hosts.length === 0) r.error(o.get('hosts'), o.at('hosts'), 'at least one host is required', node);
  r.list(o.get('gateways'), o.at('gateways'), 'gateways', (n, p) => {
    const g = r.string(n, p, { required: true });
    if (g !== undefined && g !== 'mesh') r.error(n, p, `gateway ${JSON.stringify(g)} is not supported; a waypoint serves mesh traffic only ("mesh")`);
    return g;
  });
  const http = r.list(o.get('http'), o.at('http'), 'HTTP routes', (n, p, i) => parseHttpRoute(r, n, p, i, meta));
  return { meta, hosts, http };
}

function parseHttpRoute(r: YamlReader, n: YNode, p: string, index: number, meta: ObjectMeta): VsHttpRoute | undefined {
  const o = r.object(n, p, HTTP_ROUTE_FIELDS, (k) => (UNSUPPORTED_HTTP.has(k) ? `${k} is not supported by this waypoint; supported HTTP route fields: ${HTTP_ROUTE_FIELDS.join(', ')}` : null));
  if (!o) return undefined;
  const name = r.isNull(o.get('name')) ? null : r.string(o.get('name'), o.at('name'));
  const match = r.list(o.get('match'), o.at('match'), 'HTTPMatchRequest', (mn, mp) => parseMatch(r, mn, mp));
  const route = r.list(o.get('route'), o.at('route'), 'destinations', (dn, dp) => parseDestination(r, dn, dp));
  if (route.length === 0) r.error(o.get('route'), o.at('route'), 'at least one route destination is required', n);
  const explicit = route.some((d) => d.weight >= 0);
  const weighted = route.length === 1 ? [{ ...(route[0] as VsDestination), weight: 100 }] : route.map((d) => ({ ...d, weight: Math.max(0, d.weight) }));
  if (route.length > 1 && (!explicit || weighted.every((d) => d.weight === 0))) r.error(o.get('route'), o.at('route'), 'with several destinations, give them weights (at least one above 0)');
  const retries = r.isNull(o.get('retries')) ? null : parseRetries(r, o.get('retries'), o.at('retries'), `${meta.source} ${p}`);
  const timeoutMs = duration(r, o.get('timeout'), o.at('timeout'), 0);
  const fault = r.isNull(o.get('fault')) ? null : parseFault(r, o.get('fault'), o.at('fault'));
  if (name === undefined || retries === undefined || timeoutMs === undefined || fault === undefined) return undefined;
  // timeout: 0s disables the timeout (Istio's spelling of "none").
  return { index, name, match, route: weighted, retries, timeoutMs: timeoutMs === 0 ? null : timeoutMs, fault };
}

function parseMatch(r: YamlReader, n: YNode, p: string): VsMatch | undefined {
  const o = r.object(n, p, MATCH_FIELDS, (k) => (k === 'sourceLabels' || k === 'gateways' || k === 'scheme' || k === 'statPrefix' ? `${k} is not supported by this waypoint; supported match fields: ${MATCH_FIELDS.join(', ')}` : null));
  if (!o) return undefined;
  const opt = (k: string): IstioStringMatch | null | undefined => (r.isNull(o.get(k)) ? null : stringMatch(r, o.get(k), o.at(k)));
  const named = (k: string, lower: boolean): { name: string; match: IstioStringMatch }[] =>
    r.entries(o.get(k), o.at(k), `a map of ${k === 'queryParams' ? 'parameter' : 'header'} name → StringMatch`).flatMap((e) => {
      const m = stringMatch(r, e.value, `${o.at(k)}.${e.key}`);
      return m ? [{ name: lower ? e.key.toLowerCase() : e.key, match: m }] : [];
    });
  const name = r.isNull(o.get('name')) ? null : r.string(o.get('name'), o.at('name'));
  const uri = opt('uri');
  const method = opt('method');
  const authority = opt('authority');
  const ignoreUriCase = r.bool(o.get('ignoreUriCase'), o.at('ignoreUriCase'), false);
  const port = r.isNull(o.get('port')) ? null : r.int(o.get('port'), o.at('port'), 1, 65535, 'a port');
  const sourceNamespace = r.isNull(o.get('sourceNamespace')) ? null : r.string(o.get('sourceNamespace'), o.at('sourceNamespace'), { required: true });
  if (name === undefined || uri === undefined || method === undefined || authority === undefined || ignoreUriCase === undefined || port === undefined || sourceNamespace === undefined) return undefined;
  return { name, uri, ignoreUriCase, method, authority, headers: named('headers', true), withoutHeaders: named('withoutHeaders', true), queryParams: named('queryParams', false), port, sourceNamespace };
}

function parseDestination(r: YamlReader, n: YNode, p: string): VsDestination | undefined {
  const o = r.object(n, p, ['destination', 'weight'], (k) => (k === 'headers' ? 'per-destination headers are not supported by this waypoint; supported: destination, weight' : null));
  if (!o) return undefined;
  const d = r.object(o.get('destination'), o.at('destination'), ['host', 'subset', 'port']);
  if (!d) return undefined;
  const host = r.string(d.get('host'), d.at('host'), { required: true, owner: d.node });
  const subset = r.isNull(d.get('subset')) ? null : r.string(d.get('subset'), d.at('subset'), { required: true });
  let port: number | null | undefined = null;
  if (!r.isNull(d.get('port'))) {
    const po = r.object(d.get('port'), d.at('port'), ['number']);
    port = po ? r.int(po.get('number'), po.at('number'), 1, 65535, 'a port') : undefined;
  }
  const weight = r.isNull(o.get('weight')) ? -1 : r.int(o.get('weight'), o.at('weight'), 0, 1_000_000, 'a weight');
  if (host === undefined || subset === undefined || port === undefined || weight === undefined) return undefined;
  return { host: host.toLowerCase(), subset, port, weight };
}

/** `retries`: attempts, perTryTimeout, retryOn (comma-separated Envoy conditions; numbers are retriable status codes). */
export function parseRetries(r: YamlReader, n: YNode, p: string, source: string): RetryPolicy | undefined {
  const o = r.object(n, p, ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities']);
  if (!o) return undefined;
  const attempts = r.int(o.get('attempts'), o.at('attempts'), 0, 100, 'a number of retries', 0);
  const perTryTimeoutMs = duration(r, o.get('perTryTimeout'), o.at('perTryTimeout'));
  // Retrying on other localities is what the endpoint picker does anyway (it prefers endpoints not yet tried).
  const remote = r.bool(o.get('retryRemoteLocalities'), o.at('retryRemoteLocalities'), false);
  const text = r.string(o.get('retryOn'), o.at('retryOn'), { def: 'connect-failure,refused-stream,unavailable,cancelled,503' });
  if (attempts === undefined || perTryTimeoutMs === undefined || remote === undefined || text === undefined) return undefined;
  const parsed = parseRetryOn(text);
  if (typeof parsed === 'string') {
    r.error(o.get('retryOn'), o.at('retryOn'), parsed);
    return undefined;
  }
  return { attempts, perTryTimeoutMs, ...parsed, backoffBaseMs: DEFAULT_BACKOFF_MS, source };
}

/** Splits a retryOn list; an error message for an unknown entry. */
export function parseRetryOn(text: string): { retryOn: RetryOn[]; statusCodes: number[] } | string {
  const retryOn: RetryOn[] = [];
  const statusCodes: number[] = [];
  for (const raw of text.split(',')) {
    const v = raw.trim();
    if (v === '') continue;
    if (/^[1-5][0-9][0-9]$/.test(v)) {
      statusCodes.push(Number(v));
      if (!retryOn.includes('retriable-status-codes')) retryOn.push('retriable-status-codes');
    } else if ((RETRY_ON as readonly string[]).includes(v)) {
      if (!retryOn.includes(v as RetryOn)) retryOn.push(v as RetryOn);
    } else return `retryOn ${JSON.stringify(v)} is not supported; supported: ${RETRY_ON.join(', ')} and HTTP status codes`;
  }
  return { retryOn, statusCodes };
}

function parseFault(r: YamlReader, n: YNode, p: string): FaultPolicy | undefined {
  const o = r.object(n, p, ['delay', 'abort']);
  if (!o) return undefined;
  let delay: FaultPolicy['delay'] | undefined = null;
  if (!r.isNull(o.get('delay'))) {
    const d = r.object(o.get('delay'), o.at('delay'), ['fixedDelay', 'percentage', 'percent'], (k) => (k === 'exponentialDelay' ? 'exponentialDelay is not supported; use fixedDelay' : null));
    const ms = d ? duration(r, d.get('fixedDelay'), d.at('fixedDelay')) : undefined;
    if (d && ms === null) r.error(d.get('fixedDelay'), d.at('fixedDelay'), 'fixedDelay is required', d.node);
    const pct = d ? percentage(r, d, d.node) : undefined;
    delay = ms && pct !== undefined ? { fixedDelayMs: ms, percent: pct } : undefined;
  }
  let abort: FaultPolicy['abort'] | undefined = null;
  if (!r.isNull(o.get('abort'))) {
    const a = r.object(o.get('abort'), o.at('abort'), ['httpStatus', 'grpcStatus', 'percentage', 'percent'], (k) => (k === 'http2Error' ? 'http2Error is not supported; use httpStatus or grpcStatus' : null));
    if (a) {
      const hasHttp = !r.isNull(a.get('httpStatus'));
      const hasGrpc = !r.isNull(a.get('grpcStatus'));
      if (hasHttp === hasGrpc) r.error(a.node, o.at('abort'), 'exactly one of httpStatus, grpcStatus must be set');
      const httpStatus = hasHttp ? r.int(a.get('httpStatus'), a.at('httpStatus'), 200, 599, 'an HTTP status') : null;
      let grpcStatus: number | null | undefined = null;
      if (hasGrpc) {
        const g = r.string(a.get('grpcStatus'), a.at('grpcStatus'));
        grpcStatus = g === undefined ? undefined : GRPC_CODES[g];
        if (g !== undefined && grpcStatus === undefined) r.error(a.get('grpcStatus'), a.at('grpcStatus'), `${JSON.stringify(g)} is not a gRPC status name (e.g. UNAVAILABLE, DEADLINE_EXCEEDED)`);
      }
      const pct = percentage(r, a, a.node);
      abort = httpStatus !== undefined && grpcStatus !== undefined && pct !== undefined && hasHttp !== hasGrpc ? { httpStatus, grpcStatus, percent: pct } : undefined;
    } else abort = undefined;
  }
  if (delay === undefined || abort === undefined) return undefined;
  if (!delay && !abort) {
    r.error(n, p, 'a fault needs delay or abort');
    return undefined;
  }
  return { delay, abort };
}
