import test from 'ava';
import * as http from 'node:http';
import { WaypointMesh, get, startHttpApp } from './harness';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * Routing and L7 policy through the real path (client → node-a → waypoint → node-b → app),
 * configured with the objects a user applies. Each test writes the waypoint's config file
 * and waits for it to be applied: changes take effect without a restart.
 */
const m = new WaypointMesh();
let fwd: SocketAddr;
let mirrorSeen: string[] = [];

const ROUTE_HEAD = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: server, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules:
`;

const SPLIT = `${ROUTE_HEAD}  - matches: [{ headers: [{ name: x-canary, value: "true" }] }]
    backendRefs: [{ name: server-v2, port: 80 }]
  - backendRefs:
    - { name: server-v1, port: 80, weight: 90 }
    - { name: server-v2, port: 80, weight: 10 }
`;

async function apply(yaml: string): Promise<void> {
  const before = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
  m.writeL7(yaml);
  await waitUntil(
    () => {
      const applied = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
      return applied > before;
    },
    5000,
    () => 'waypoint config applied',
  );
}

test.before(async () => {
  const v1 = await startHttpApp(m.V1, 8080, 'v1');
  const v2 = await startHttpApp(m.V2, 8080, 'v2');
  v2.on('request', (req: http.IncomingMessage) => {
    if (String(req.headers['host']).endsWith('-shadow')) mirrorSeen.push(String(req.url));
  });
  m.track(v1);
  m.track(v2);
  await m.start(SPLIT);
  fwd = await m.forwarder({ host: m.VIP, port: 80 });
});

test.after.always(() => m.close());

test.serial('weighted split 90/10 over 200 requests, and a header match to the canary', async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const counts: Record<string, number> = { v1: 0, v2: 0 };
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) counts[(await get(fwd, '/split', {}, { agent })).body.app]!++;
    }),
  );
  t.log(`200 requests: v1=${counts['v1']} v2=${counts['v2']}`);
  t.is(counts['v1']! + counts['v2']!, 200);
  t.true(counts['v1']! >= 165 && counts['v1']! <= 195, `v1 share ${counts['v1']} outside 90% ± 7.5%`);
  for (let i = 0; i < 10; i++) t.is((await get(fwd, '/c', { 'x-canary': 'true' }, { agent })).body.app, 'v2');
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_requests_total', { destination_service_name: 'server-v2', response_code: '200' }), counts['v2']! + 10);
});

test.serial('path matches and precedence: Exact > RegularExpression > longest PathPrefix; method and query matches', async (t) => {
  await apply(`${ROUTE_HEAD}  - matches: [{ path: { type: PathPrefix, value: /a } }]
    backendRefs: [{ name: server-v1, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: prefix-a }] } }]
  - matches: [{ path: { type: PathPrefix, value: /a/b } }]
    backendRefs: [{ name: server-v2, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: prefix-ab }] } }]
  - matches: [{ path: { type: RegularExpression, value: "/a/b/[0-9]+" } }]
    backendRefs: [{ name: server-v1, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: regex } ] } }]
  - matches: [{ path: { type: Exact, value: /a/b/42 } }]
    backendRefs: [{ name: server-v2, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: exact }] } }]
  - matches: [{ path: { type: PathPrefix, value: /m }, method: POST }]
    backendRefs: [{ name: server-v2, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: method }] } }]
  - matches: [{ path: { type: PathPrefix, value: /m }, queryParams: [{ name: q, value: "1" }] }]
    backendRefs: [{ name: server-v1, port: 80 }]
    filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-rule, value: query }] } }]
`);
  const rule = async (path: string, method = 'GET'): Promise<string> => String((await get(fwd, path, {}, { method })).headers['x-rule'] ?? (await get(fwd, path, {}, { method })).status);
  t.is(await rule('/a'), 'prefix-a');
  t.is(await rule('/a/x'), 'prefix-a');
  t.is(await rule('/a/b'), 'prefix-ab');
  t.is(await rule('/a/b/7'), 'regex');
  t.is(await rule('/a/b/42'), 'exact');
  t.is(await rule('/ab'), '404', 'PathPrefix matches whole segments; no rule matches → 404');
  t.is(await rule('/m?q=1', 'POST'), 'method', 'a method match beats a query match');
  t.is(await rule('/m?q=1'), 'query');
  const nr = m.requestLogs().find((l) => l['path'] === '/ab');
  t.like(nr, { response_code: 404, response_flags: 'NR' });
});

test.serial('filters: request/response header modifiers, URL rewrite, redirect, mirror', async (t) => {
  mirrorSeen = [];
  await apply(`${ROUTE_HEAD}  - matches: [{ path: { type: PathPrefix, value: /mod } }]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: { set: [{ name: x-set, value: s }], add: [{ name: x-add, value: a2 }], remove: [x-drop] }
    - type: ResponseHeaderModifier
      responseHeaderModifier: { add: [{ name: x-resp, value: r }], remove: [x-remove-me] }
    backendRefs: [{ name: server-v1, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /old } }]
    filters: [{ type: URLRewrite, urlRewrite: { hostname: rewritten.example, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } } }]
    backendRefs: [{ name: server-v1, port: 80 }]
  - matches: [{ path: { type: Exact, value: /go } }]
    filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, statusCode: 301 } }]
  - matches: [{ path: { type: PathPrefix, value: /mirror } }]
    filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: server-v2, port: 80 } } }]
    backendRefs: [{ name: server-v1, port: 80 }]
`);
  const mod = await get(fwd, '/mod', { 'x-set': 'old', 'x-add': 'a1', 'x-drop': 'd' });
  t.is(mod.body.headers['x-set'], 's');
  t.is(mod.body.headers['x-add'], 'a1, a2');
  t.is(mod.body.headers['x-drop'], undefined);
  t.is(mod.headers['x-resp'], 'r');
  t.is(mod.headers['x-remove-me'], undefined);
  t.is(mod.headers['x-app'], 'v1');

  const rw = await get(fwd, '/old/x?k=v');
  t.is(rw.body.url, '/new/x?k=v');
  t.is(rw.body.headers['host'], 'rewritten.example');

  const redirect = await get(fwd, '/go?z=1');
  t.is(redirect.status, 301);
  t.is(redirect.headers['location'], 'https://example.org/go?z=1');

  const mirrored = await get(fwd, '/mirror/1');
  t.is(mirrored.body.app, 'v1');
  await waitUntil(() => mirrorSeen.includes('/mirror/1'), 5000, () => 'mirror request at v2');
  t.pass();
});

test.serial('timeouts: a backend slower than timeouts.request gets 504 UT', async (t) => {
  await apply(`${ROUTE_HEAD}  - timeouts: { request: 300ms }
    backendRefs: [{ name: server-v1, port: 80 }]
`);
  const r = await get(fwd, '/slow');
  t.is(r.status, 504);
  t.is(r.text, 'upstream request timeout');
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/slow'), 5000, () => 'log');
  t.like(m.requestLogs().find((l) => l['path'] === '/slow'), { response_code: 504, response_flags: 'UT' });
  t.is((await get(fwd, '/fast')).status, 200);
});

test.serial('L7 AuthorizationPolicy: DENY one path → 403 RBAC: access denied; ALLOW by principal; applied and removed without restart', async (t) => {
  await apply(`${SPLIT}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: default }
spec:
  targetRefs: [{ kind: Service, group: "", name: server }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-client, namespace: default }
spec:
  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: waypoint }]
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/client"] } }] }]
`);
  const denied = await get(fwd, '/admin/users');
  t.is(denied.status, 403);
  t.is(denied.text, 'RBAC: access denied');
  t.is((await get(fwd, '/public')).status, 200);
  const other = await m.forwarder({ host: m.VIP, port: 80 }, m.OTHER_CLIENT);
  t.is((await get(other, '/public')).status, 403, 'ALLOW policies exist and none matches the other principal');
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/admin/users'), 5000, () => 'log');
  t.like(m.requestLogs().find((l) => l['path'] === '/admin/users'), { response_code: 403, policy: 'default/deny-admin', response_code_details: 'rbac_access_denied_matched_policy[default/deny-admin]' });
  await apply(SPLIT);
  t.is((await get(fwd, '/admin/users')).status, 200);
});

test.serial('L7 AuthorizationPolicy remoteIpBlocks: the original client address from the node proxy decides (its port does not spoil the match)', async (t) => {
  await apply(`${SPLIT}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-client-ip, namespace: default }
spec:
  targetRefs: [{ kind: Service, group: "", name: server }]
  action: ALLOW
  rules: [{ from: [{ source: { remoteIpBlocks: ["${m.CLIENT}/32"] } }] }]
`);
  t.is((await get(fwd, '/public')).status, 200, 'the client inside the block is allowed');
  const other = await m.forwarder({ host: m.VIP, port: 80 }, m.OTHER_CLIENT);
  t.is((await get(other, '/public')).status, 403, 'a client outside the block is denied');
  await apply(SPLIT);
});
