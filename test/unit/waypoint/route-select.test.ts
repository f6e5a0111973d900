import test from 'ava';
import { parseL7Config } from '../../../src/waypoint/config/parse';
import type { Route } from '../../../src/waypoint/config/types';
import { attachedRoutes, pickBackend, selectRoute } from '../../../src/waypoint/l7/route-select';
import { applyHeaderModifier, modifyPath, redirectLocation, type HeaderBag } from '../../../src/waypoint/l7/filters';
import type { L7Request } from '../../../src/waypoint/l7/request';
import { service } from '../../helpers/workloads';

/** Routes from YAML (the same parser the waypoint uses), so the tests read like user config. */
function routes(yaml: string): Route[] {
  const r = parseL7Config([{ text: yaml, source: 't.yaml' }]);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.column} ${e.message}`).join('\n'));
  return [...r.value.routes];
}

function route(name: string, rules: string, extra = ''): string {
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}${extra} }
spec:
  parentRefs: [{ kind: Service, group: "", name: svc }]
  rules:
${rules}`;
}

function req(p: Partial<L7Request> & { url?: string } = {}): L7Request {
  const url = p.url ?? p.path ?? '/';
  const q = url.indexOf('?');
  return { method: p.method ?? 'GET', path: q < 0 ? url : url.slice(0, q), query: q < 0 ? '' : url.slice(q + 1), host: p.host ?? 'svc', headers: p.headers ?? {} };
}

/** "route/ruleIndex" of the selected rule, or "none". */
function pick(rs: Route[], r: L7Request): string {
  const d = selectRoute(rs, r);
  return d ? `${d.route.meta.name}/${d.rule.index}` : 'none';
}

const be = '    backendRefs: [{ name: svc, port: 80 }]\n';

test('path match types: Exact, PathPrefix (whole segments), RegularExpression', (t) => {
  const rs = routes(
    route('r', `  - matches: [{ path: { type: Exact, value: /exact } }]\n${be}  - matches: [{ path: { type: PathPrefix, value: /pre } }]\n${be}  - matches: [{ path: { type: RegularExpression, value: "/re/[0-9]+" } }]\n${be}`),
  );
  t.is(pick(rs, req({ path: '/exact' })), 'r/0');
  t.is(pick(rs, req({ path: '/exact/x' })), 'none');
  t.is(pick(rs, req({ path: '/pre' })), 'r/1');
  t.is(pick(rs, req({ path: '/pre/a/b' })), 'r/1');
  t.is(pick(rs, req({ path: '/prefix' })), 'none');
  t.is(pick(rs, req({ path: '/re/42' })), 'r/2');
  t.is(pick(rs, req({ path: '/re/4x' })), 'none');
  t.is(pick(rs, req({ url: '/exact?a=b' })), 'r/0', 'the query is not part of the path');
});

test('header, query parameter and method matches (ANDed within a match, ORed across matches)', (t) => {
  const rs = routes(
    route(
      'r',
      `  - matches:
    - headers: [{ name: x-a, value: "1" }, { type: RegularExpression, name: x-b, value: "b+" }]
    - queryParams: [{ name: q, value: v }]
      method: POST
${be}`,
    ),
  );
  t.is(pick(rs, req({ headers: { 'x-a': '1', 'x-b': 'bbb' } })), 'r/0');
  t.is(pick(rs, req({ headers: { 'x-a': '1' } })), 'none');
  t.is(pick(rs, req({ headers: { 'x-a': '1', 'x-b': 'c' } })), 'none');
  t.is(pick(rs, req({ url: '/?q=v', method: 'POST' })), 'r/0');
  t.is(pick(rs, req({ url: '/?q=v', method: 'GET' })), 'none');
  t.is(pick(rs, req({ url: '/?q=w', method: 'POST' })), 'none');
});

test('precedence: Exact > RegularExpression > PathPrefix, longer prefix, method, headers, query params', (t) => {
  const rs = routes(
    route(
      'r',
      `  - matches: [{ path: { type: PathPrefix, value: / } }]
${be}  - matches: [{ path: { type: PathPrefix, value: /a } }]
${be}  - matches: [{ path: { type: PathPrefix, value: /a/b } }]
${be}  - matches: [{ path: { type: RegularExpression, value: "/a/.*" } }]
${be}  - matches: [{ path: { type: Exact, value: /a/b/c } }]
${be}  - matches: [{ path: { type: PathPrefix, value: /m }, method: GET }]
${be}  - matches: [{ path: { type: PathPrefix, value: /m }, headers: [{ name: h1, value: x }, { name: h2, value: x }] }]
${be}  - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: h1, value: x }] }]
${be}  - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: h1, value: x }, { name: h2, value: x }] }]
${be}  - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: h1, value: x }], queryParams: [{ name: a, value: b }] }]
${be}  - matches: [{ path: { type: PathPrefix, value: /q }, queryParams: [{ name: a, value: b }] }]
${be}  - matches: [{ path: { type: PathPrefix, value: /q }, queryParams: [{ name: a, value: b }, { name: c, value: d }] }]
${be}`,
    ),
  );
  t.is(pick(rs, req({ path: '/a/b/c' })), 'r/4', 'Exact wins over everything');
  t.is(pick(rs, req({ path: '/a/b/d' })), 'r/3', 'RegularExpression beats PathPrefix');
  t.is(pick(rs, req({ path: '/a' })), 'r/1', 'longest matching prefix');
  t.is(pick(rs, req({ path: '/z' })), 'r/0');
  t.is(pick(rs, req({ path: '/m', headers: { h1: 'x', h2: 'x' } })), 'r/5', 'a method match beats header matches');
  t.is(pick(rs, req({ path: '/m', method: 'POST', headers: { h1: 'x', h2: 'x' } })), 'r/6');
  t.is(pick(rs, req({ url: '/h?a=b', headers: { h1: 'x', h2: 'x' } })), 'r/8', 'more header matches beat query matches');
  t.is(pick(rs, req({ url: '/h?a=b', headers: { h1: 'x' } })), 'r/9', 'equal headers: more query matches');
  t.is(pick(rs, req({ url: '/q?a=b&c=d' })), 'r/11');
});

test('ties: the oldest route, then namespace/name order, then rule order', (t) => {
  const rule = `  - matches: [{ path: { type: PathPrefix, value: /x } }]\n${be}`;
  const older = routes(route('b-old', rule, ', creationTimestamp: "2020-01-01T00:00:00Z"') + route('a-new', rule, ', creationTimestamp: "2021-01-01T00:00:00Z"'));
  t.is(pick(older, req({ path: '/x' })), 'b-old/0');
  const same = routes(route('b', rule) + route('a', rule));
  t.is(pick(same, req({ path: '/x' })), 'a/0');
  const twoRules = routes(route('r', rule + rule));
  t.is(pick(twoRules, req({ path: '/x' })), 'r/0');
});

function grpcRoute(name: string, rules: string, extra = '', spec = ''): string {
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: ${name}${extra} }
spec:
  parentRefs: [{ kind: Service, group: "", name: svc }]${spec}
  rules:
${rules}`;
}

/** A gRPC call as the waypoint sees it: POST /<service>/<method>. */
function call(service: string, method: string, headers: Record<string, string> = {}): L7Request {
  return req({ method: 'POST', path: `/${service}/${method}`, headers: { 'content-type': 'application/grpc', ...headers } });
}

test('GRPCRoute precedence (GRPCRoute rules, not HTTPRoute ranking): service+method > service > method > any', (t) => {
  const rs = routes(
    grpcRoute(
      'g',
      `  - matches: [{ method: { method: Say } }]
${be}  - matches: [{ method: { service: echo.Echo } }]
${be}  - matches: [{ method: { service: echo.Echo, method: Say } }]
${be}  - backendRefs: [{ name: svc, port: 80 }]
`,
    ),
  );
  t.is(pick(rs, call('echo.Echo', 'Say')), 'g/2', 'exact service and method beat service-only and method-only');
  // HTTPRoute ranking would pick the method-only match (a regular expression over the path) over
  // the service-only one (a path prefix); GRPCRoute counts the service's characters first.
  t.is(pick(rs, call('echo.Echo', 'Chat')), 'g/1', 'service-only beats method-only');
  t.is(pick(rs, call('other.Svc', 'Say')), 'g/0', 'method-only beats match-all');
  t.is(pick(rs, call('other.Svc', 'Other')), 'g/3', 'match-all is the last resort');
});

test('GRPCRoute precedence: more characters of service, then of method, then more headers', (t) => {
  const rs = routes(
    grpcRoute(
      'g',
      `  - matches: [{ method: { type: RegularExpression, service: "echo[.].*" } }]
${be}  - matches: [{ method: { type: RegularExpression, service: "echo[.]Ec.*", method: "S.*" } }]
${be}  - matches: [{ method: { type: RegularExpression, service: "echo[.]Ec.*", method: "Sa[y]" } }]
${be}  - matches: [{ method: { type: RegularExpression, service: "echo[.]Ec.*", method: "Sa[y]" }, headers: [{ name: x-v, value: "2" }] }]
${be}`,
    ),
  );
  t.is(pick(rs, call('echo.Echo', 'Chat')), 'g/0', 'only the service-only rule matches');
  t.is(pick(rs, call('echo.Echo', 'Sing')), 'g/1', 'a longer service beats a shorter one');
  t.is(pick(rs, call('echo.Echo', 'Say')), 'g/2', 'equal service: more characters of method win ("Sa[y]" over "S.*")');
  t.is(pick(rs, call('echo.Echo', 'Say', { 'x-v': '2' })), 'g/3', 'with equal service and method, more header matches win');
});

test('GRPCRoute precedence: hostname, then route age, then namespace/name, then rule order', (t) => {
  const rule = `  - matches: [{ method: { service: echo.Echo } }]\n${be}`;
  const byHost = routes(grpcRoute('a-any', rule) + grpcRoute('b-wild', rule, '', '\n  hostnames: ["*.default.svc.cluster.local"]') + grpcRoute('c-exact', rule, '', '\n  hostnames: ["svc.default.svc.cluster.local"]'));
  const d = selectRoute(byHost, call('echo.Echo', 'Say'), 'svc.default.svc.cluster.local');
  t.is(d?.route.meta.name, 'c-exact', 'a matching non-wildcard hostname first');
  const noExact = byHost.filter((r) => r.meta.name !== 'c-exact');
  t.is(selectRoute(noExact, call('echo.Echo', 'Say'), 'svc.default.svc.cluster.local')?.route.meta.name, 'b-wild', 'then the longest matching hostname');
  const older = routes(grpcRoute('b-old', rule, ', creationTimestamp: "2020-01-01T00:00:00Z"') + grpcRoute('a-new', rule, ', creationTimestamp: "2021-01-01T00:00:00Z"'));
  t.is(pick(older, call('echo.Echo', 'Say')), 'b-old/0', 'the oldest route');
  t.is(pick(routes(grpcRoute('b', rule) + grpcRoute('a', rule)), call('echo.Echo', 'Say')), 'a/0', 'then namespace/name');
  t.is(pick(routes(grpcRoute('r', rule + rule)), call('echo.Echo', 'Say')), 'r/0', 'then the first rule');
});

test('attachment: Service routes (optionally by port) first, else waypoint routes by hostname', (t) => {
  const svc = service({ name: 'svc', vip: '10.0.0.1', ports: { 80: 8080, 90: 9090 } });
  const wp = { name: 'waypoint', namespace: 'default' };
  const rs = routes(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: on-port-90 }
spec: { parentRefs: [{ kind: Service, group: "", name: svc, port: 90 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: on-waypoint }
spec: { parentRefs: [{ name: waypoint }], hostnames: ["*.default.svc.cluster.local"] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: other-host }
spec: { parentRefs: [{ name: waypoint }], hostnames: ["other.example"] }
`);
  t.deepEqual(attachedRoutes(rs, svc, 90, wp).map((r) => r.meta.name), ['on-port-90']);
  t.deepEqual(attachedRoutes(rs, svc, 80, wp).map((r) => r.meta.name), ['on-waypoint']);
  t.deepEqual(attachedRoutes(rs, svc, 80, { name: 'another', namespace: 'default' }), []);
});

test('weighted backends: proportional picks, zero weights never picked', (t) => {
  const bs = [
    { name: 'v1', namespace: 'd', port: 80, weight: 90 },
    { name: 'v2', namespace: 'd', port: 80, weight: 10 },
    { name: 'v3', namespace: 'd', port: 80, weight: 0 },
  ];
  const counts: Record<string, number> = { v1: 0, v2: 0, v3: 0 };
  for (let i = 0; i < 1000; i++) counts[pickBackend(bs, () => i / 1000)!.name]!++;
  t.deepEqual(counts, { v1: 900, v2: 100, v3: 0 });
  t.is(pickBackend([{ name: 'x', namespace: 'd', port: 80, weight: 0 }], () => 0.5), null);
});

test('header modifiers: set replaces, add appends, remove deletes', (t) => {
  const h: HeaderBag = { 'x-a': 'old', 'x-b': 'b1', 'x-c': 'gone' };
  applyHeaderModifier(h, { set: [{ name: 'x-a', value: 'new' }], add: [{ name: 'x-b', value: 'b2' }, { name: 'x-d', value: 'd' }], remove: ['x-c'] });
  t.deepEqual(h, { 'x-a': 'new', 'x-b': ['b1', 'b2'], 'x-d': 'd' });
});

test('path rewrites and redirect locations', (t) => {
  const prefix = { path: { type: 'PathPrefix' as const, value: '/api' }, headers: [], queryParams: [], method: null, grpc: null };
  t.is(modifyPath('/api/x/y', { type: 'ReplacePrefixMatch', value: '/v2' }, prefix), '/v2/x/y');
  t.is(modifyPath('/api', { type: 'ReplacePrefixMatch', value: '/v2' }, prefix), '/v2');
  t.is(modifyPath('/api/x', { type: 'ReplacePrefixMatch', value: '/' }, prefix), '/x');
  t.is(modifyPath('/api/x', { type: 'ReplaceFullPath', value: '/fixed' }, prefix), '/fixed');
  const base = { type: 'RequestRedirect' as const, scheme: null, hostname: null, path: null, port: null, statusCode: 302 as const };
  const r = { host: 'svc:8080', path: '/api/x', query: 'a=1', scheme: 'http' as const };
  t.is(redirectLocation(base, r, prefix), 'http://svc:8080/api/x?a=1');
  t.is(redirectLocation({ ...base, scheme: 'https' }, r, prefix), 'https://svc/api/x?a=1');
  t.is(redirectLocation({ ...base, hostname: 'new.example', port: 9000 }, r, prefix), 'http://new.example:9000/api/x?a=1');
  t.is(redirectLocation({ ...base, path: { type: 'ReplacePrefixMatch', value: '/v2' } }, { ...r, host: 'svc' }, prefix), 'http://svc/v2/x?a=1');
});
