import test from 'ava';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { WaypointMesh } from './harness';
import { sumSamples } from '../../helpers/prom-text';
import { waitUntil } from '../../helpers/node-harness';

/**
 * The RequestMirror filter under backpressure, through client → node-a → waypoint →
 * node-b → apps: a mirror backend that never reads its request body cannot slow or
 * buffer the primary without bound (the copy is dropped once it would hold more than its
 * limit, counted and logged), and a healthy HTTP/2 mirror gets its copy over HTTP/2.
 */
const m = new WaypointMesh();
const BIG = 24 * 1024 * 1024;
let mirrorHeld: http.IncomingMessage[] = [];
let h2Mirrored: { path: string; authority: string; bodyLength: number; trailers: unknown }[] = [];

const L7 = `apiVersion: v1
kind: Service
metadata: { name: server-v2, namespace: default }
spec:
  ports: [{ name: grpc-like, port: 90, appProtocol: http2 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mirrors, namespace: default }
spec:
  parentRefs: [{ kind: Service, group: "", name: server }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /upload } }]
    filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: server-v2, port: 80 } } }]
    backendRefs: [{ name: server-v1, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /h2 } }]
    filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: server-v2, port: 90 } } }]
    backendRefs: [{ name: server-v1, port: 80 }]
`;

test.before(async () => {
  // The primary: reads the whole body and reports its size.
  const v1 = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(JSON.stringify({ app: 'v1', bodyLength: n })));
  });
  // The slow mirror: accepts the request and never reads its body nor answers.
  const v2 = http.createServer((req) => {
    req.pause();
    mirrorHeld.push(req);
  });
  // A healthy HTTP/2 mirror.
  const v2h2 = http2.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      h2Mirrored.push({ path: req.url, authority: req.authority, bodyLength: n, trailers: req.trailers });
      res.end('ignored');
    });
  });
  await new Promise<void>((r) => v1.listen(8080, m.V1, r));
  await new Promise<void>((r) => v2.listen(8080, m.V2, r));
  await new Promise<void>((r) => v2h2.listen(9090, m.V2, r));
  m.track({ close: () => v1.close() });
  m.track({
    close: () => {
      for (const r of mirrorHeld) r.socket.destroy();
      v2.close();
    },
  });
  m.track({ close: () => v2h2.close() });
  await m.start(L7);
});
test.after.always(() => m.close());

function post(addr: { ip: string; port: number }, path: string, size: number): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: addr.ip, port: addr.port, method: 'POST', path, agent: false, headers: { host: 'server.default.svc.cluster.local', 'content-length': String(size) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

test.serial('a mirror that never reads: the primary upload completes in full, the copy is dropped once its buffer limit is reached, counted and logged', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const r = await post(fwd, '/upload', BIG);
  t.is(r.status, 200);
  t.deepEqual(r.body, { app: 'v1', bodyLength: BIG });
  await waitUntil(() => mirrorHeld.length === 1, 5000, () => 'the mirror got its request head');
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_mirror_dropped_total', { reason: 'slow' }), 1);
  const logged = m.wpLogs.find((l) => l['msg'] === 'request mirror copy dropped; the primary request is unaffected');
  t.is(logged.length, 1);
  t.like(logged[0], { reason: 'slow', mirror: 'default/server-v2:80', dropped: 1 });
  // The primary's own record is clean: the mirror's fate is not the request's.
  const rec = m.requestLogs().find((l) => l['path'] === '/upload');
  t.like(rec, { response_code: 200, response_flags: '-', bytes_received: BIG });
});

test.serial('a mirror backend on an http2 port gets its copy over HTTP/2 with the -shadow host and the whole body', async (t) => {
  h2Mirrored = [];
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const r = await post(fwd, '/h2/copy', 1000);
  t.deepEqual(r.body, { app: 'v1', bodyLength: 1000 });
  await waitUntil(() => h2Mirrored.length === 1, 5000, () => 'the HTTP/2 mirror got its copy');
  t.like(h2Mirrored[0], { path: '/h2/copy', authority: 'server.default.svc.cluster.local-shadow', bodyLength: 1000 });
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'ztunnel_ts_waypoint_mirror_dropped_total'), 1, 'only the slow copy of the previous test was dropped');
});
