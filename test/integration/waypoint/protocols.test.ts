import test from 'ava';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WaypointMesh, startH2App, startHttpApp } from './harness';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';
import { startEchoServer } from '../../helpers/echo-server';

/**
 * Protocols through client → node-a → waypoint → node-b → app: h2c with prior knowledge,
 * gRPC unary and bidirectional streaming (grpc-js on both ends), an HTTP/1.1 upgrade
 * (WebSocket handshake + echo), and a TCP service (detected as TCP, proxied with TCP metrics).
 */
const m = new WaypointMesh();
const PROTO = join(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'waypoint', 'echo.proto');

interface EchoClient extends grpc.Client {
  Say(req: { text: string }, meta: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { text: string; app: string }) => void): void;
  Chat(meta: grpc.Metadata): grpc.ClientDuplexStream<{ text: string }, { text: string; app: string }>;
}

function loadEcho(): { service: grpc.ServiceDefinition; Client: new (addr: string, creds: grpc.ChannelCredentials) => EchoClient } {
  const def = protoLoader.loadSync(PROTO, { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { echo: { Echo: grpc.ServiceClientConstructor } };
  return { service: pkg.echo.Echo.service, Client: pkg.echo.Echo as unknown as new (addr: string, creds: grpc.ChannelCredentials) => EchoClient };
}

test.before(async () => {
  m.track(await startHttpApp(m.V1, 8080, 'v1'));
  m.track(await startHttpApp(m.V2, 8080, 'v2'));
  m.track(await startH2App(m.V1, 9090, 'v1'));
  m.track(await startH2App(m.V2, 9090, 'v2'));
  const { service } = loadEcho();
  for (const [ip, name] of [[m.V1, 'v1'], [m.V2, 'v2']] as const) {
    const server = new grpc.Server();
    server.addService(service, {
      Say: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (call.request.text === 'fail') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        cb(null, { text: call.request.text.toUpperCase(), app: name });
      },
      Chat: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
        call.on('data', (r: { text: string }) => call.write({ text: `echo:${r.text}`, app: name }));
        call.on('end', () => call.end());
      },
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(`${ip}:50051`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    m.track({ close: () => server.forceShutdown() });
  }
  const echo = await startEchoServer(m.V1, 7000);
  m.track({ close: () => void echo.close() });
  // A server-first TCP app: it speaks before the client does.
  const banner = createServer((c) => {
    c.on('error', () => c.destroy());
    c.end('220 banner ready\r\n');
  });
  await new Promise<void>((r) => banner.listen(7100, m.ip(23), r));
  m.track(banner);
  const bannerWl = { name: 'banner', ips: [m.ip(23)], node: 'node-b', authorizationPolicies: ['default/only-waypoint'], services: { 'default/banner.default.svc.cluster.local': { 7100: 7100 } } };
  const bannerSvc = { name: 'banner', hostname: 'banner.default.svc.cluster.local', vip: m.ip(104), ports: { 7100: 7100 }, waypoint: m.WP };
  await m.start(`apiVersion: v1
kind: Service
metadata: { name: banner, namespace: default }
spec:
  selector: { app: banner }
  ports: [{ name: tcp-banner, port: 7100, targetPort: 7100 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: echo-say, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 50051 }]
  rules:
  - matches: [{ method: { service: echo.Echo, method: Say } }]
    backendRefs: [{ name: server-v2, port: 50051 }]
  - backendRefs: [{ name: server-v1, port: 50051 }]
`,
    {},
    { workloads: [bannerWl], services: [bannerSvc] },
  );
});

test.after.always(() => m.close());

test.serial('h2c with prior knowledge: one HTTP/2 connection, many streams, headers and status relayed', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 90 });
  const session = http2.connect(`http://${fwd.ip}:${fwd.port}`);
  t.teardown(() => session.close());
  const one = (path: string): Promise<{ status: number; body: any }> =>
    new Promise((resolve, reject) => {
      const r = session.request({ ':path': path, ':authority': 'server.default.svc.cluster.local:90' });
      let text = '';
      let status = 0;
      r.on('response', (h) => (status = Number(h[':status'])));
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => resolve({ status, body: JSON.parse(text) }));
      r.on('error', reject);
      r.end();
    });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(`/h2/${i}`)));
  for (const [i, r] of results.entries()) {
    t.is(r.status, 200);
    t.is(r.body.path, `/h2/${i}`);
    t.regex(r.body.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  }
  await waitUntil(() => m.requestLogs().filter((l) => String(l['path']).startsWith('/h2/')).length === 20, 5000, () => 'logs');
  t.is(m.requestLogs().find((l) => l['path'] === '/h2/0')?.['protocol'], 'HTTP/2');
});

test.serial('gRPC unary (routed by method), error status in trailers, and bidirectional streaming; message metrics', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 50051 });
  const { Client } = loadEcho();
  const c = new Client(`${fwd.ip}:${fwd.port}`, grpc.credentials.createInsecure());
  t.teardown(() => c.close());
  const say = (text: string): Promise<{ text: string; app: string }> => new Promise((resolve, reject) => c.Say({ text }, new grpc.Metadata(), (err, res) => (err ? reject(err) : resolve(res!))));
  t.deepEqual(await say('hi'), { text: 'HI', app: 'v2' }, 'the GRPCRoute sends echo.Echo/Say to server-v2');
  const err = await say('fail').catch((e: grpc.ServiceError) => e);
  t.is((err as grpc.ServiceError).code, grpc.status.NOT_FOUND);
  t.is((err as grpc.ServiceError).details, 'no such thing');

  const chat = c.Chat(new grpc.Metadata());
  const replies: { text: string; app: string }[] = [];
  chat.on('data', (r: { text: string; app: string }) => replies.push(r));
  const ended = new Promise((r) => chat.on('end', r));
  for (const w of ['a', 'b', 'c', 'd']) chat.write({ text: w });
  chat.end();
  await ended;
  t.deepEqual(
    replies.map((r) => `${r.app}:${r.text}`),
    ['v1:echo:a', 'v1:echo:b', 'v1:echo:c', 'v1:echo:d'],
    'Chat falls to the catch-all rule (server-v1)',
  );
  await waitUntil(() => m.requestLogs().filter((l) => String(l['path']).startsWith('/echo.Echo/')).length === 3, 5000, () => 'grpc logs');
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '0', destination_service_name: 'server-v2' }), 1);
  t.is(sumSamples(metrics, 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '5', destination_service_name: 'server-v2' }), 1);
  t.is(sumSamples(metrics, 'istio_request_messages_total', { request_protocol: 'grpc', destination_service_name: 'server-v1' }), 4);
  t.is(sumSamples(metrics, 'istio_response_messages_total', { request_protocol: 'grpc', destination_service_name: 'server-v1' }), 4);
});

test.serial('WebSocket: the HTTP/1.1 upgrade is relayed and both directions then flow', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const res = await new Promise<{ status: number; socket: import('node:net').Socket; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    const req = http.request({ host: fwd.ip, port: fwd.port, path: '/ws', headers: { host: 'server', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } });
    req.on('upgrade', (r, socket) => resolve({ status: r.statusCode ?? 0, socket, headers: r.headers }));
    req.on('response', (r) => reject(new Error(`no upgrade: ${r.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  t.is(res.status, 101);
  t.regex(String(res.headers['x-app']), /^v[12]$/);
  const echoed = await new Promise<string>((resolve) => {
    let got = '';
    res.socket.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.length >= 11) resolve(got);
    });
    res.socket.write('hello frame');
  });
  t.is(echoed, 'hello frame');
  res.socket.destroy();
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/ws'), 5000, () => 'ws log');
  t.like(m.requestLogs().find((l) => l['path'] === '/ws'), { response_code: 101 });
});

test.serial('a TCP service through the waypoint: detected as TCP, spliced, TCP metrics', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP_TCP, port: 7000 });
  const s = connect({ host: fwd.ip, port: fwd.port });
  const got = await new Promise<string>((resolve) => {
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.length >= 5) resolve(buf);
    });
    // A server-first protocol would send nothing; here the client talks first but not HTTP.
    s.write('\x00\x01bin');
  });
  t.is(got, '\x00\x01bin');
  s.end();
  await waitUntil(() => m.wpLogs.find((l) => l['scope'] === 'access' && l['msg'] === 'connection complete').length > 0, 5000, () => 'tcp record');
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_tcp_connections_closed_total', { destination_service_name: 'echo' }), 1);
  t.is(sumSamples(metrics, 'istio_tcp_received_bytes_total', { destination_service_name: 'echo' }), 5);
  t.is(sumSamples(metrics, 'istio_requests_total', { destination_service_name: 'echo' }), 0);
});

test.serial('a Service port declared TCP (port name tcp-*) skips detection: a server-first protocol works', async (t) => {
  const fwd = await m.forwarder({ host: m.ip(104), port: 7100 });
  const s = connect({ host: fwd.ip, port: fwd.port });
  const got = await new Promise<string>((resolve) => {
    let buf = '';
    s.on('data', (c: Buffer) => (buf += c.toString()));
    s.on('end', () => resolve(buf));
  });
  s.destroy();
  t.is(got, '220 banner ready\r\n');
  const line = m.wpLogs.find((l) => l['msg'] === 'tunnel protocol' && l['authority'] === `${m.ip(104)}:7100`)[0];
  t.like(line, { protocol: 'tcp', by: 'appProtocol' });
});
