import test from 'ava';
import * as http from 'node:http';
import { WaypointMesh, get, startHttpApp } from './harness';
import { waitUntil } from '../../helpers/node-harness';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * Request tracing end to end (client → node-a → waypoint → node-b → app) with a real OTLP/HTTP
 * receiver on loopback: the exported JSON is decoded and checked against what the app saw.
 * TRACING_SAMPLING=0 so only requests that bring a sampled traceparent are exported
 * (parent-based sampling).
 */
const m = new WaypointMesh();
let fwd: SocketAddr;
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  links?: { traceId: string; spanId: string; attributes: { key: string; value: Record<string, unknown> }[] }[];
  status?: { code?: number };
}
const received: { contentType: string; resource: Record<string, unknown>; span: OtlpSpan }[] = [];

function attr(s: OtlpSpan, key: string): unknown {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
}

test.before(async () => {
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { resource: { attributes: { key: string; value: Record<string, unknown> }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) {
        const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
        for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ contentType: String(req.headers['content-type']), resource, span });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  m.track(receiver);
  const v1 = await startHttpApp(m.V1, 8080, 'v1');
  const v2 = await startHttpApp(m.V2, 8080, 'v2');
  m.track(v1);
  m.track(v2);
  await m.start('', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/v1/traces`, OTEL_BSP_SCHEDULE_DELAY: '100', TRACING_SAMPLING: '0' });
  fwd = await m.forwarder({ host: m.VIP, port: 80 });
});

test.after.always(() => m.close());

test.serial('a sampled traceparent: one SERVER span exported over OTLP/HTTP, parented on it, parent of the upstream request, linked to the tunnel', async (t) => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parent = '00f067aa0ba902b7';
  const r = await get(fwd, '/traced?q=1', { traceparent: `00-${traceId}-${parent}-01`, 'x-request-id': 'trace-1' });
  t.is(r.status, 200);
  const up = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(r.body.headers['traceparent']);
  t.truthy(up, 'the app got a sampled traceparent');
  t.is(up![1], traceId, 'same trace');
  await waitUntil(() => received.some((x) => x.span.traceId === traceId), 10_000, () => 'span exported');
  const got = received.filter((x) => x.span.traceId === traceId);
  t.is(got.length, 1, 'exactly one span per request');
  const { span, resource, contentType } = got[0]!;
  t.is(contentType, 'application/json');
  t.is(span.parentSpanId, parent, 'parented on the incoming traceparent');
  t.is(span.spanId, up![2], "the upstream request's parent is the waypoint span");
  t.is(span.kind, 2, 'SERVER');
  t.is(span.name, 'server.default.svc.cluster.local:80/*');
  t.is(attr(span, 'http.request.method'), 'GET');
  t.is(attr(span, 'url.path'), '/traced?q=1');
  t.is(Number(attr(span, 'http.response.status_code')), 200);
  t.is(attr(span, 'guid:x-request-id'), 'trace-1');
  t.is(attr(span, 'istio.source.principal'), 'spiffe://cluster.local/ns/default/sa/client');
  t.is(attr(span, 'upstream_cluster'), 'outbound|80||server.default.svc.cluster.local');
  t.regex(String(attr(span, 'upstream.address')), /:8080$/);
  t.is(resource['service.name'], 'waypoint.default');
  t.is(span.links?.length, 1, "the client node proxy's CONNECT traceparent is linked");
  const link = span.links![0]!;
  t.regex(link.traceId, /^[0-9a-f]{32}$/);
  t.not(link.traceId, traceId);
  t.deepEqual(link.attributes, [{ key: 'link.kind', value: { stringValue: 'hbone_connect' } }]);
});

test.serial('parent-based sampling: an unsampled traceparent is continued but not exported; a request without one starts a trace (TRACING_SAMPLING=0: not exported)', async (t) => {
  const traceId = 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb';
  const r = await get(fwd, '/unsampled', { traceparent: `00-${traceId}-1111111111111111-00` });
  t.regex(r.body.headers['traceparent'], new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
  const fresh = await get(fwd, '/fresh');
  const freshTrace = /^00-([0-9a-f]{32})-[0-9a-f]{16}-00$/.exec(fresh.body.headers['traceparent']);
  t.truthy(freshTrace, 'a new unsampled trace');
  // A sampled request after them: once it is exported, the earlier ones would have been too.
  const marker = 'cccccccccccccccccccccccccccccccc';
  await get(fwd, '/marker', { traceparent: `00-${marker}-2222222222222222-01` });
  await waitUntil(() => received.some((x) => x.span.traceId === marker), 10_000, () => 'marker exported');
  t.false(received.some((x) => x.span.traceId === traceId || x.span.traceId === freshTrace![1]));
});

test.serial('a local reply (404 NR: no route matches) is exported with its status and flags, as an error span', async (t) => {
  const before = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
  m.writeL7(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: only, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules: [{ matches: [{ path: { type: Exact, value: /only } }], backendRefs: [{ name: server-v1, port: 80 }] }]
`);
  await waitUntil(() => m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length > before, 5000, () => 'config applied');
  const traceId = 'dddddddddddddddddddddddddddddddd';
  t.is((await get(fwd, '/nowhere', { traceparent: `00-${traceId}-3333333333333333-01` })).status, 404);
  await waitUntil(() => received.some((x) => x.span.traceId === traceId), 10_000, () => 'span exported');
  const span = received.find((x) => x.span.traceId === traceId)!.span;
  t.is(Number(attr(span, 'http.response.status_code')), 404);
  t.is(attr(span, 'response_flags'), 'NR');
  t.is(attr(span, 'response.code_details'), 'route_not_found');
  t.is(span.status?.code, 2, 'STATUS_CODE_ERROR');
});

test.serial('a WebSocket upgrade gets its span too (status 101), parented on the incoming traceparent, ended when the connection closes', async (t) => {
  const traceId = 'dddddddddddddddd0123456789abcdef';
  const res = await new Promise<{ status: number; socket: import('node:net').Socket }>((resolve, reject) => {
    const req = http.request({ host: fwd.ip, port: fwd.port, path: '/only', headers: { host: 'server', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', traceparent: `00-${traceId}-3333333333333333-01` } });
    req.on('upgrade', (r, socket) => resolve({ status: r.statusCode ?? 0, socket }));
    req.on('response', (r) => reject(new Error(`no upgrade: ${r.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  t.is(res.status, 101);
  res.socket.destroy();
  await waitUntil(() => received.some((x) => x.span.traceId === traceId), 10_000, () => 'upgrade span exported');
  const got = received.filter((x) => x.span.traceId === traceId);
  t.is(got.length, 1);
  t.is(got[0]!.span.parentSpanId, '3333333333333333');
  t.is(attr(got[0]!.span, 'url.path'), '/only', 'routed by the HTTPRoute the previous test left (Exact /only)');
  t.is(Number(attr(got[0]!.span, 'http.response.status_code')), 101);
});
