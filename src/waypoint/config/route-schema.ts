import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import { parseHttpRouteRetry } from '../traffic/httproute-retry';
import { headerName, parseGatewayDuration, parseNameValues, parseRef, parseRegex } from './meta';
import type { BackendRef, HeaderModifier, NamedMatch, ObjectMeta, PathMatch, PathModifier, Route, RouteFilter, RouteMatch, RouteRule, ValueMatch } from './types';

const HTTP_RULE_FIELDS = ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry'];
const GRPC_RULE_FIELDS = ['name', 'matches', 'filters', 'backendRefs'];
const HTTP_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror'] as const;
const GRPC_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
const UNSUPPORTED_RULE: Record<string, string> = {
  sessionPersistence: 'sessionPersistence is not supported by this waypoint; supported rule fields: ',
};

/** The spec of an HTTPRoute or GRPCRoute (Gateway API v1). */
export function parseRouteSpec(r: YamlReader, kind: 'HTTPRoute' | 'GRPCRoute', node: YNode, path: string, meta: ObjectMeta): Route | undefined {
  const o = r.object(node, path, ['parentRefs', 'hostnames', 'rules']);
  if (!o) return undefined;
  const ns = meta.namespace;
  const parents = r.list(o.get('parentRefs'), o.at('parentRefs'), 'parentRefs', (n, p) => parseRef(r, n, p, ns, { allowPort: true, allowSection: true }));
  if (r.isNull(o.get('parentRefs'))) r.error(o.get('parentRefs'), o.at('parentRefs'), 'at least one parentRef is needed (kind Service, or the waypoint Gateway)', node);
  const hostnames = r.list(o.get('hostnames'), o.at('hostnames'), 'hostnames', (n, p) => {
    const h = r.string(n, p, { required: true });
    if (h === undefined) return undefined;
    if (!/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(h.toLowerCase())) {
      r.error(n, p, `${JSON.stringify(h)} is not a hostname (optionally with a leading "*.")`);
      return undefined;
    }
    return h.toLowerCase();
  });
  const rulesNode = o.get('rules');
  const rules = r.isNull(rulesNode)
    ? [defaultRule(kind === 'GRPCRoute')]
    : r.list(rulesNode, o.at('rules'), 'rules', (n, p, i) => (kind === 'HTTPRoute' ? parseHttpRule(r, n, p, i, ns) : parseGrpcRule(r, n, p, i, ns)));
  return { kind, meta, parents, hostnames, rules };
}

function defaultRule(grpc: boolean): RouteRule {
  return { index: 0, matches: [matchAll(grpc)], filters: [], backends: [], requestTimeoutMs: null, backendTimeoutMs: null, retry: null };
}

function matchAll(grpc = false): RouteMatch {
  return { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [], method: null, grpc: grpc ? { service: '', method: '' } : null };
}

function ruleObject(r: YamlReader, n: YNode, p: string, fields: string[]): ReturnType<YamlReader['object']> {
  return r.object(n, p, fields, (k) => (UNSUPPORTED_RULE[k] ? UNSUPPORTED_RULE[k] + fields.join(', ') : null));
}

function parseHttpRule(r: YamlReader, n: YNode, p: string, index: number, ns: string): RouteRule | undefined {
  const o = ruleObject(r, n, p, HTTP_RULE_FIELDS);
  if (!o) return undefined;
  const matchesNode = o.get('matches');
  const matches = r.isNull(matchesNode) ? [matchAll()] : r.list(matchesNode, o.at('matches'), 'HTTPRouteMatch', (mn, mp) => parseHttpMatch(r, mn, mp));
  const filters = r.list(o.get('filters'), o.at('filters'), 'filters', (fn, fp) => parseFilter(r, fn, fp, ns, HTTP_FILTERS));
  for (const f of filters) {
    const pm = f.type === 'RequestRedirect' || f.type === 'URLRewrite' ? f.path : null;
    if (pm?.type === 'ReplacePrefixMatch' && matches.some((m) => m.path.type !== 'PathPrefix')) {
      r.error(o.get('filters'), o.at('filters'), `${f.type} with ReplacePrefixMatch needs every match of the rule to be a PathPrefix match`);
    }
  }
  const backends = parseBackends(r, o.get('backendRefs'), o.at('backendRefs'), ns);
  let requestTimeoutMs: number | null | undefined = null;
  let backendTimeoutMs: number | null | undefined = null;
  const t = o.get('timeouts');
  if (!r.isNull(t)) {
    const to = r.object(t, o.at('timeouts'), ['request', 'backendRequest']);
    if (to) {
      requestTimeoutMs = parseGatewayDuration(r, to.get('request'), to.at('request'));
      backendTimeoutMs = parseGatewayDuration(r, to.get('backendRequest'), to.at('backendRequest'));
      if (requestTimeoutMs && backendTimeoutMs && backendTimeoutMs > requestTimeoutMs) {
        r.error(to.get('backendRequest'), to.at('backendRequest'), 'backendRequest must not be longer than request');
      }
    }
  }
  const retry = parseHttpRouteRetry(r, o.get('retry'), o.at('retry'));
  if (requestTimeoutMs === undefined || backendTimeoutMs === undefined || retry === undefined) return undefined;
  return { index, matches, filters, backends, requestTimeoutMs, backendTimeoutMs, retry };
}

function parseGrpcRule(r: YamlReader, n: YNode, p: string, index: number, ns: string): RouteRule | undefined {
  const o = ruleObject(r, n, p, GRPC_RULE_FIELDS);
  if (!o) return undefined;
  const matchesNode = o.get('matches');
  const matches = r.isNull(matchesNode) ? [matchAll(true)] : r.list(matchesNode, o.at('matches'), 'GRPCRouteMatch', (mn, mp) => parseGrpcMatch(r, mn, mp));
  const filters = r.list(o.get('filters'), o.at('filters'), 'filters', (fn, fp) => parseFilter(r, fn, fp, ns, GRPC_FILTERS));
  const backends = parseBackends(r, o.get('backendRefs'), o.at('backendRefs'), ns);
  return { index, matches, filters, backends, requestTimeoutMs: null, backendTimeoutMs: null, retry: null };
}

function parseHttpMatch(r: YamlReader, n: YNode, p: string): RouteMatch | undefined {
  const o = r.object(n, p, ['path', 'headers', 'queryParams', 'method']);
  if (!o) return undefined;
  let path: PathMatch | undefined = { type: 'PathPrefix', value: '/' };
  const pn = o.get('path');
  if (!r.isNull(pn)) {
    const po = r.object(pn, o.at('path'), ['type', 'value']);
    if (!po) return undefined;
    const type = r.oneOf(po.get('type'), po.at('type'), ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix');
    const value = r.string(po.get('value'), po.at('value'), { def: '/' });
    if (type === undefined || value === undefined) return undefined;
    if (type !== 'RegularExpression' && !value.startsWith('/')) {
      r.error(po.get('value'), po.at('value'), `${JSON.stringify(value)} must start with "/"`);
      return undefined;
    }
    if (type === 'RegularExpression') {
      const re = parseRegex(r, po.get('value'), po.at('value'), value);
      path = re ? { type, value, re } : undefined;
    } else path = { type, value: type === 'PathPrefix' && value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value };
  }
  const headers = namedMatches(r, o.get('headers'), o.at('headers'), true);
  const queryParams = namedMatches(r, o.get('queryParams'), o.at('queryParams'), false);
  const method = r.isNull(o.get('method')) ? null : r.oneOf(o.get('method'), o.at('method'), METHODS);
  if (path === undefined || method === undefined) return undefined;
  return { path, headers, queryParams, method, grpc: null };
}

/** A GRPCRouteMatch as an HTTP match: gRPC methods are POST /<service>/<method>. */
function parseGrpcMatch(r: YamlReader, n: YNode, p: string): RouteMatch | undefined {
  const o = r.object(n, p, ['method', 'headers']);
  if (!o) return undefined;
  let path: PathMatch | undefined = { type: 'PathPrefix', value: '/' };
  let grpc = { service: '', method: '' };
  const mn = o.get('method');
  if (!r.isNull(mn)) {
    const mo = r.object(mn, o.at('method'), ['type', 'service', 'method']);
    if (!mo) return undefined;
    const type = r.oneOf(mo.get('type'), mo.at('type'), ['Exact', 'RegularExpression'] as const, 'Exact');
    const service = r.string(mo.get('service'), mo.at('service'), { def: '' });
    const method = r.string(mo.get('method'), mo.at('method'), { def: '' });
    if (type === undefined || service === undefined || method === undefined) return undefined;
    if (!service && !method) {
      r.error(mn, o.at('method'), 'at least one of service and method must be set');
      return undefined;
    }
    grpc = { service, method };
    if (type === 'Exact') {
      if (/[/]/.test(service) || /[/]/.test(method)) {
        r.error(mn, o.at('method'), 'service and method must not contain "/"');
        return undefined;
      }
      if (service && method) path = { type: 'Exact', value: `/${service}/${method}` };
      else if (service) path = { type: 'PathPrefix', value: `/${service}` };
      else path = { type: 'RegularExpression', value: `/[^/]+/${escapeRe(method)}`, re: new RegExp(`^/[^/]+/${escapeRe(method)}$`) };
    } else {
      const value = `/${service || '[^/]+'}/${method || '[^/]+'}`;
      const re = parseRegex(r, mn, o.at('method'), value);
      path = re ? { type: 'RegularExpression', value, re } : undefined;
    }
  }
  const headers = namedMatches(r, o.get('headers'), o.at('headers'), true);
  if (path === undefined) return undefined;
  return { path, headers, queryParams: [], method: null, grpc };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function namedMatches(r: YamlReader, n: YNode, p: string, header: boolean): NamedMatch[] {
  const seen = new Set<string>();
  return r.list(n, p, header ? 'header matches' : 'query parameter matches', (mn, mp) => {
    const o = r.object(mn, mp, ['type', 'name', 'value']);
    if (!o) return undefined;
    const type = r.oneOf(o.get('type'), o.at('type'), ['Exact', 'RegularExpression'] as const, 'Exact');
    const name = header ? headerName(r, o, 'name') : r.string(o.get('name'), o.at('name'), { required: true, owner: mn });
    const value = r.string(o.get('value'), o.at('value'), { required: true, owner: mn });
    if (type === undefined || name === undefined || value === undefined) return undefined;
    // The spec: only the first entry with a given name takes effect.
    if (seen.has(name)) return undefined;
    seen.add(name);
    let match: ValueMatch | undefined = { type: 'Exact', value };
    if (type === 'RegularExpression') {
      const re = parseRegex(r, o.get('value'), o.at('value'), value);
      match = re ? { type, value, re } : undefined;
    }
    return match ? { name, match } : undefined;
  });
}

function parseModifier(r: YamlReader, n: YNode, p: string): HeaderModifier | undefined {
  const o = r.object(n, p, ['set', 'add', 'remove']);
  if (!o) return undefined;
  const set = parseNameValues(r, o.get('set'), o.at('set'));
  const add = parseNameValues(r, o.get('add'), o.at('add'));
  const remove = r.list(o.get('remove'), o.at('remove'), 'header names', (rn, rp) => r.string(rn, rp, { required: true })?.toLowerCase());
  return { set, add, remove };
}

function parsePathModifier(r: YamlReader, n: YNode, p: string): PathModifier | null | undefined {
  if (r.isNull(n)) return null;
  const o = r.object(n, p, ['type', 'replaceFullPath', 'replacePrefixMatch']);
  if (!o) return undefined;
  const type = r.oneOf(o.get('type'), o.at('type'), ['ReplaceFullPath', 'ReplacePrefixMatch'] as const);
  if (type === undefined) return undefined;
  const field = type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const value = r.string(o.get(field), o.at(field), { required: true, owner: n });
  if (value === undefined) return undefined;
  if (!value.startsWith('/')) {
    r.error(o.get(field), o.at(field), `${JSON.stringify(value)} must start with "/"`);
    return undefined;
  }
  return { type, value };
}

function parseFilter(r: YamlReader, n: YNode, p: string, ns: string, allowed: readonly RouteFilter['type'][]): RouteFilter | undefined {
  const fieldOf: Record<RouteFilter['type'], string> = {
    RequestHeaderModifier: 'requestHeaderModifier',
    ResponseHeaderModifier: 'responseHeaderModifier',
    RequestRedirect: 'requestRedirect',
    URLRewrite: 'urlRewrite',
    RequestMirror: 'requestMirror',
  };
  const o = r.object(n, p, ['type', ...allowed.map((t) => fieldOf[t])]);
  if (!o) return undefined;
  const type = r.oneOf(o.get('type'), o.at('type'), allowed);
  if (type === undefined) return undefined;
  const field = fieldOf[type];
  const body = o.get(field);
  if (r.isNull(body)) {
    r.error(body, o.at(field), `required for type ${type}`, n);
    return undefined;
  }
  const bp = o.at(field);
  switch (type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const modifier = parseModifier(r, body, bp);
      return modifier ? { type, modifier } : undefined;
    }
    case 'RequestRedirect': {
      const b = r.object(body, bp, ['scheme', 'hostname', 'path', 'port', 'statusCode']);
      if (!b) return undefined;
      const scheme = r.isNull(b.get('scheme')) ? null : r.oneOf(b.get('scheme'), b.at('scheme'), ['http', 'https'] as const);
      const hostname = r.isNull(b.get('hostname')) ? null : r.string(b.get('hostname'), b.at('hostname'), { required: true });
      const path = parsePathModifier(r, b.get('path'), b.at('path'));
      const port = r.isNull(b.get('port')) ? null : r.int(b.get('port'), b.at('port'), 1, 65535, 'a port');
      const code = r.int(b.get('statusCode'), b.at('statusCode'), 301, 308, 'a redirect status', 302);
      if (code !== undefined && ![301, 302, 303, 307, 308].includes(code)) r.error(b.get('statusCode'), b.at('statusCode'), `${code} is not supported; expected 301, 302, 303, 307 or 308`);
      if (scheme === undefined || hostname === undefined || path === undefined || port === undefined || code === undefined) return undefined;
      return { type, scheme, hostname, path, port, statusCode: code as 301 | 302 | 303 | 307 | 308 };
    }
    case 'URLRewrite': {
      const b = r.object(body, bp, ['hostname', 'path']);
      if (!b) return undefined;
      const hostname = r.isNull(b.get('hostname')) ? null : r.string(b.get('hostname'), b.at('hostname'), { required: true });
      const path = parsePathModifier(r, b.get('path'), b.at('path'));
      if (hostname === undefined || path === undefined) return undefined;
      return { type, hostname, path };
    }
    case 'RequestMirror': {
      const b = r.object(body, bp, ['backendRef', 'percent', 'fraction']);
      if (!b) return undefined;
      const backend = parseBackend(r, b.get('backendRef'), b.at('backendRef'), ns, false);
      let percent: number | undefined = 100;
      if (!r.isNull(b.get('percent'))) percent = r.int(b.get('percent'), b.at('percent'), 0, 100, 'a percentage');
      else if (!r.isNull(b.get('fraction'))) {
        const f = r.object(b.get('fraction'), b.at('fraction'), ['numerator', 'denominator']);
        const num = f ? r.int(f.get('numerator'), f.at('numerator'), 0, 1_000_000, 'a numerator') : undefined;
        const den = f ? r.int(f.get('denominator'), f.at('denominator'), 1, 1_000_000, 'a denominator', 100) : undefined;
        percent = num !== undefined && den !== undefined ? Math.min(100, (100 * num) / den) : undefined;
      }
      if (!backend || percent === undefined) return undefined;
      return { type, backend, percent };
    }
  }
}

function parseBackends(r: YamlReader, n: YNode, p: string, ns: string): BackendRef[] {
  return r.list(n, p, 'backendRefs', (bn, bp) => parseBackend(r, bn, bp, ns, true));
}

function parseBackend(r: YamlReader, n: YNode, p: string, ns: string, weighted: boolean): BackendRef | undefined {
  const fields = ['group', 'kind', 'name', 'namespace', 'port', ...(weighted ? ['weight', 'filters'] : [])];
  const o = r.object(n, p, fields);
  if (!o) return undefined;
  const group = r.string(o.get('group'), o.at('group'), { def: '' });
  const kind = r.string(o.get('kind'), o.at('kind'), { def: 'Service' });
  if (kind !== undefined && group !== undefined && (kind !== 'Service' || (group !== '' && group !== 'core'))) {
    r.error(o.node, p, `backend kind ${JSON.stringify(kind)} (group ${JSON.stringify(group)}) is not supported; supported: kind Service`);
    return undefined;
  }
  if (weighted && !r.isNull(o.get('filters'))) {
    r.error(o.get('filters'), o.at('filters'), 'per-backend filters are not supported; put filters on the rule');
    return undefined;
  }
  const name = r.string(o.get('name'), o.at('name'), { required: true, owner: n });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { def: ns });
  if (r.isNull(o.get('port'))) {
    r.error(o.node, o.at('port'), 'port is required for Service backends');
    return undefined;
  }
  const port = r.int(o.get('port'), o.at('port'), 1, 65535, 'a port');
  const weight = weighted ? r.int(o.get('weight'), o.at('weight'), 0, 1_000_000, 'a weight', 1) : 1;
  if (name === undefined || namespace === undefined || port === undefined || weight === undefined) return undefined;
  return { name, namespace, port, weight };
}
