import test from 'ava';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WaypointMesh } from './harness';
import { waitUntil } from '../../helpers/node-harness';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * GRPCRoute precedence as the Gateway API defines it for GRPCRoute (not HTTPRoute's
 * ranking), through grpc-js client → node-a → waypoint → node-b → grpc-js server. Which rule
 * decided each call is read from the waypoint's access log (`route`).
 */
const m = new WaypointMesh();
const PROTO = join(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'waypoint', 'echo.proto');
let fwd: SocketAddr;
let client: grpc.Client;

function head(name: string, parent: string, extra = ''): string {
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: ${name}, namespace: default${extra} }
spec:
  parentRefs: [${parent}]
`;
}
const ON_SERVICE = '{ group: "", kind: Service, name: server, port: 50051 }';
const ON_WAYPOINT = '{ group: gateway.networking.k8s.io, kind: Gateway, name: waypoint }';
const BE = '    backendRefs: [{ name: server-v1, port: 50051 }]\n';

async function apply(yaml: string): Promise<void> {
  const before = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
  m.writeL7(yaml);
  await waitUntil(() => m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length > before, 5000, () => 'waypoint config applied');
}

/** One unary call of `/<service>/<method>` (the server may answer UNIMPLEMENTED); the `route` the waypoint logged for it. */
async function routeOf(service: string, method: string, meta: Record<string, string> = {}): Promise<string> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(meta)) md.set(k, v);
  const id = `${service}-${method}-${Math.random().toString(36).slice(2)}`;
  md.set('x-request-id', id);
  const enc = (x: Buffer): Buffer => x;
  await new Promise<void>((resolve) => client.makeUnaryRequest(`/${service}/${method}`, enc, enc, Buffer.from([0x0a, 0x01, 0x61]), md, () => resolve()));
  await waitUntil(() => m.requestLogs().some((l) => l['x_request_id'] === id), 5000, () => `access log of ${id}`);
  return String(m.requestLogs().find((l) => l['x_request_id'] === id)?.['route'] ?? 'none');
}

test.before(async () => {
  const def = protoLoader.loadSync(PROTO, { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { echo: { Echo: grpc.ServiceClientConstructor } };
  for (const ip of [m.V1, m.V2]) {
    const server = new grpc.Server();
    server.addService(pkg.echo.Echo.service, {
      Say: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { text: call.request.text, app: ip }),
      Chat: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(`${ip}:50051`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    m.track({ close: () => server.forceShutdown() });
  }
  await m.start();
  fwd = await m.forwarder({ host: m.VIP, port: 50051 });
  client = new grpc.Client(`${fwd.ip}:${fwd.port}`, grpc.credentials.createInsecure());
  m.track({ close: () => client.close() });
});
test.after.always(() => m.close());

test.serial('service+method > service > method > match-all; more headers break a tie', async (t) => {
  await apply(`${head('g', ON_SERVICE)}  rules:
  - matches: [{ method: { method: Say } }]
${BE}  - matches: [{ method: { service: echo.Echo } }]
${BE}  - matches: [{ method: { service: echo.Echo, method: Say } }]
${BE}  - backendRefs: [{ name: server-v1, port: 50051 }]
  - matches: [{ method: { service: echo.Echo, method: Say }, headers: [{ name: x-canary, value: "1" }] }]
${BE}`);
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/g#2', 'exact service and method');
  t.is(await routeOf('echo.Echo', 'Say', { 'x-canary': '1' }), 'GRPCRoute/default/g#4', 'the same plus a header match');
  // HTTPRoute's ranking would prefer the method-only rule (a regular expression on the path) to the service-only one (a prefix).
  t.is(await routeOf('echo.Echo', 'Chat'), 'GRPCRoute/default/g#1', 'service-only beats method-only');
  t.is(await routeOf('other.Svc', 'Say'), 'GRPCRoute/default/g#0', 'method-only beats match-all');
  t.is(await routeOf('other.Svc', 'Nope'), 'GRPCRoute/default/g#3', 'match-all last');
});

test.serial('regular expressions: more characters of the service, then of the method', async (t) => {
  await apply(`${head('re', ON_SERVICE)}  rules:
  - matches: [{ method: { type: RegularExpression, service: "echo[.].*" } }]
${BE}  - matches: [{ method: { type: RegularExpression, service: "echo[.]Ec.*", method: "S.*" } }]
${BE}  - matches: [{ method: { type: RegularExpression, service: "echo[.]Ec.*", method: "Sa[y]" } }]
${BE}`);
  t.is(await routeOf('echo.Echo', 'Chat'), 'GRPCRoute/default/re#0');
  t.is(await routeOf('echo.Echo', 'Sing'), 'GRPCRoute/default/re#1', 'the longer service pattern');
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/re#2', 'equal service: the longer method pattern');
});

test.serial('across routes: matching hostname (exact, then longest), then the oldest, then namespace/name', async (t) => {
  const rule = `  rules:\n  - matches: [{ method: { service: echo.Echo } }]\n${BE}`;
  await apply(
    `${head('a-any', ON_WAYPOINT)}${rule}` +
      `${head('b-wild', ON_WAYPOINT)}  hostnames: ["*.default.svc.cluster.local"]\n${rule}` +
      `${head('c-exact', ON_WAYPOINT)}  hostnames: ["server.default.svc.cluster.local"]\n${rule}`,
  );
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/c-exact#0', 'a matching non-wildcard hostname');
  await apply(`${head('a-any', ON_WAYPOINT)}${rule}${head('b-wild', ON_WAYPOINT)}  hostnames: ["*.default.svc.cluster.local"]\n${rule}`);
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/b-wild#0', 'then the longest matching hostname');
  await apply(`${head('b-old', ON_WAYPOINT, ', creationTimestamp: "2020-01-01T00:00:00Z"')}${rule}${head('a-new', ON_WAYPOINT, ', creationTimestamp: "2021-01-01T00:00:00Z"')}${rule}`);
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/b-old#0', 'the oldest route');
  await apply(`${head('b', ON_WAYPOINT)}${rule}${head('a', ON_WAYPOINT)}${rule}`);
  t.is(await routeOf('echo.Echo', 'Say'), 'GRPCRoute/default/a#0', 'then namespace/name');
});
