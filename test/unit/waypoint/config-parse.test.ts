import test from 'ava';
import { parseL7Config, type L7ConfigError } from '../../../src/waypoint/config/parse';

function parse(text: string): ReturnType<typeof parseL7Config> {
  return parseL7Config([{ text, source: 'wp.yaml' }]);
}

function errorsOf(text: string): L7ConfigError[] {
  const r = parse(text);
  if (r.ok) throw new Error('expected errors');
  return [...r.errors];
}

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: shop
  creationTimestamp: "2024-01-02T03:04:05Z"
spec:
  parentRefs:
  - { group: "", kind: Service, name: reviews, port: 9080 }
  rules:
  - matches:
    - path: { type: PathPrefix, value: /api/ }
      headers: [{ name: X-Canary, value: "yes" }]
      queryParams: [{ type: RegularExpression, name: v, value: "[0-9]+" }]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: { set: [{ name: X-A, value: "1" }], add: [{ name: x-b, value: "2" }], remove: [X-C] }
    - type: RequestMirror
      requestMirror: { backendRef: { name: shadow, port: 80 }, percent: 50 }
    backendRefs:
    - { name: reviews-v1, port: 9080, weight: 90 }
    - { name: reviews-v2, port: 9080, weight: 10 }
    timeouts: { request: 1m30s, backendRequest: 500ms }
  - backendRefs: [{ name: reviews-v1, port: 9080 }]
`;

test('an HTTPRoute is parsed with defaults filled in', (t) => {
  const r = parse(ROUTE);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  const route = r.value.routes[0]!;
  t.is(route.kind, 'HTTPRoute');
  t.deepEqual(route.meta, { name: 'reviews', namespace: 'shop', createdMs: Date.parse('2024-01-02T03:04:05Z'), source: 'wp.yaml:1' });
  t.deepEqual(route.parents, [{ kind: 'Service', name: 'reviews', namespace: 'shop', port: 9080 }]);
  const [r0, r1] = route.rules;
  t.deepEqual(r0!.matches[0]!.path, { type: 'PathPrefix', value: '/api' });
  t.deepEqual(r0!.matches[0]!.headers.map((h) => [h.name, h.match.type, h.match.value]), [['x-canary', 'Exact', 'yes']]);
  t.is(r0!.matches[0]!.queryParams[0]!.match.type, 'RegularExpression');
  t.is(r0!.matches[0]!.method, 'GET');
  t.deepEqual(r0!.filters[0], { type: 'RequestHeaderModifier', modifier: { set: [{ name: 'x-a', value: '1' }], add: [{ name: 'x-b', value: '2' }], remove: ['x-c'] } });
  t.deepEqual(r0!.filters[1], { type: 'RequestMirror', backend: { name: 'shadow', namespace: 'shop', port: 80, weight: 1 }, percent: 50 });
  t.deepEqual(r0!.backends, [
    { name: 'reviews-v1', namespace: 'shop', port: 9080, weight: 90 },
    { name: 'reviews-v2', namespace: 'shop', port: 9080, weight: 10 },
  ]);
  t.is(r0!.requestTimeoutMs, 90_000);
  t.is(r0!.backendTimeoutMs, 500);
  // A rule without matches matches everything (PathPrefix "/").
  t.deepEqual(r1!.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [], method: null, grpc: null }]);
  t.is(r1!.backends[0]!.weight, 1);
});

test('multi-document files, List objects and unknown kinds (ignored, reported once)', (t) => {
  const text = `${ROUTE}---
apiVersion: v1
kind: ConfigMap
metadata: { name: x }
---
apiVersion: v1
kind: List
items:
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: { name: p, namespace: shop }
  spec:
    targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: waypoint }]
    action: DENY
    rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
- apiVersion: v1
  kind: ConfigMap
  metadata: { name: y }
`;
  const r = parse(text);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.is(r.value.routes.length, 1);
  t.is(r.value.policies.length, 1);
  t.deepEqual(r.value.ignoredKinds, ['v1/ConfigMap']);
  t.deepEqual(r.value.policies[0]!.targets, [{ kind: 'Gateway', name: 'waypoint', namespace: 'shop', port: null }]);
  t.deepEqual(r.value.policies[0]!.rules[0]!.to[0]!.paths, [{ kind: 'Prefix', value: '/admin' }]);
});

test('a GRPCRoute method match becomes an HTTP path match', (t) => {
  const r = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs: [{ kind: Service, group: "", name: echo }]
  rules:
  - matches:
    - method: { service: echo.Echo, method: Say }
    - method: { service: echo.Echo }
    - method: { method: Say }
    - method: { type: RegularExpression, service: "echo\\\\..*" }
    backendRefs: [{ name: echo, port: 50051 }]
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  const paths = r.value.routes[0]!.rules[0]!.matches.map((m) => `${m.path.type} ${m.path.value}`);
  t.deepEqual(paths, ['Exact /echo.Echo/Say', 'PathPrefix /echo.Echo', 'RegularExpression /[^/]+/Say', 'RegularExpression /echo\\..*/[^/]+']);
  // The service and method as written stay with each match: GRPCRoute precedence counts their characters.
  t.deepEqual(
    r.value.routes[0]!.rules[0]!.matches.map((m) => m.grpc),
    [
      { service: 'echo.Echo', method: 'Say' },
      { service: 'echo.Echo', method: '' },
      { service: '', method: 'Say' },
      { service: 'echo\\..*', method: '' },
    ],
  );
});

test('errors carry file, line and column and name what is supported', (t) => {
  const errs = errorsOf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, group: "", name: s }]
  rules:
  - matches:
    - path: { type: Prefix, value: /x }
    sessionPersistence: { sessionName: x }
    backendRefs: [{ name: s }]
`);
  const lines = errs.map((e) => `${e.source}:${e.line}:${e.column}: ${e.message}`);
  t.true(lines.some((l) => l.startsWith('wp.yaml:8:') && l.includes('"Prefix" is not valid; expected one of Exact, PathPrefix, RegularExpression')), lines.join('\n'));
  t.true(lines.some((l) => l.startsWith('wp.yaml:9:5:') && l.includes('sessionPersistence is not supported') && l.includes('supported rule fields: name, matches, filters, backendRefs, timeouts, retry')), lines.join('\n'));
  t.true(lines.some((l) => l.startsWith('wp.yaml:10:') && l.includes('port is required for Service backends')), lines.join('\n'));
});

test('unsupported policy features are rejected with what is supported', (t) => {
  const base = (spec: string): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: p }
spec:
${spec}`;
  const cases: [string, string][] = [
    ['  selector: { matchLabels: { app: x } }\n', 'policies with a selector are enforced by the node proxy'],
    ['  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: w }]\n  action: CUSTOM\n', 'action CUSTOM'],
    ['  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: w }]\n  rules: [{ from: [{ source: { serviceAccounts: ["*"] } }] }]\n', 'serviceAccounts is not supported'],
    ['  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: w }]\n  rules: [{ when: [{ key: "request.auth.type", values: [x] }] }]\n', 'is not a supported condition key; supported: request.headers[<name>]'],
    ['  targetRefs: [{ kind: Pod, group: "", name: w }]\n', 'kind "Pod" in group "" is not supported'],
    ['  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: w }]\n  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }]\n', 'invalid prefix length'],
    ['  action: DENY\n', 'targetRefs is required'],
  ];
  for (const [spec, want] of cases) {
    const errs = errorsOf(base(spec));
    t.true(errs.some((e) => e.message.includes(want)), `${want}: ${errs.map((e) => e.message).join('; ')}`);
  }
});

test('duplicates and YAML syntax errors are reported with positions', (t) => {
  const doc = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [{ kind: Service, group: "", name: s }] }\n';
  const dup = errorsOf(`${doc}---\n${doc}`);
  t.regex(dup[0]!.message, /duplicate HTTPRoute\/default\/r \(also at wp.yaml:1\)/);
  t.is(dup[0]!.line, 6);
  const bad = errorsOf('kind: [unclosed\n');
  t.regex(bad[0]!.message, /not valid YAML/);
  t.is(bad[0]!.line, 2);
});

test('a v1alpha2 version of a known kind is rejected naming the supported versions', (t) => {
  const errs = errorsOf('apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: GRPCRoute\nmetadata: { name: g }\nspec: {}\n');
  t.regex(errs[0]!.message, /not supported; supported: gateway.networking.k8s.io\/v1/);
});

test('a core/v1 Service gives port protocols from appProtocol or the port name; state-owned fields are accepted', (t) => {
  const r = parse(`apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec:
  type: ClusterIP
  selector: { app: db }
  ports:
  - { name: tcp-mysql, port: 3306 }
  - { name: web, port: 80, appProtocol: http }
  - { name: grpc-api, port: 9000 }
  - { name: other, port: 9100 }
  - { name: dns, port: 53, protocol: UDP }
`);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.deepEqual(r.value.services[0]!.protocols, { 3306: 'tcp', 80: 'http', 9000: 'http2' });
  const bad = parse('apiVersion: v1\nkind: Service\nmetadata: { name: x }\nspec: { ports: [{ port: 1, bogus: 2 }] }\n');
  t.false(bad.ok);
});
