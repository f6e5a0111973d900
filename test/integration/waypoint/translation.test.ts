import test from 'ava';
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { promisify } from 'node:util';
import { WaypointMesh } from './harness';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * Request and response trailers in both directions, and HTTP/1.1 ↔ HTTP/2 translation by
 * the backend Service port's appProtocol, through client → node-a → waypoint → node-b →
 * app. Port 80 declares `http` (HTTP/1.1 upstream), port 90 declares `http2` (HTTP/2
 * upstream); each app reports the protocol it was spoken to in and the trailers it got,
 * and answers with a trailer of its own. curl and nghttp are the independent clients.
 */
const m = new WaypointMesh();
const run = promisify(execFile);
let h1Fwd: SocketAddr;
let h2Fwd: SocketAddr;

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: server, namespace: default }
spec:
  ports:
  - { name: web, port: 80, appProtocol: http }
  - { name: api, port: 90, appProtocol: http2 }
`;

/** The app's answer: how it was spoken to, the request trailers it received, the body length. */
function report(req: http.IncomingMessage | http2.Http2ServerRequest, body: Buffer, app: string): string {
  return JSON.stringify({ app, proto: req.httpVersion, method: req.method, url: req.url, trailers: req.trailers, bodyLength: body.length });
}

async function startApps(ip: string, name: string): Promise<void> {
  const h1 = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // No content-length: chunked, so the trailer can follow the body.
      res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-app-trailer' });
      res.write(report(req, Buffer.concat(chunks), name));
      res.addTrailers({ 'x-app-trailer': `${name}-h1` });
      res.end();
    });
  });
  const h2 = http2.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(report(req, Buffer.concat(chunks), name));
      res.addTrailers({ 'x-app-trailer': `${name}-h2` });
      res.end();
    });
  });
  await new Promise<void>((r) => h1.listen(8080, ip, r));
  await new Promise<void>((r) => h2.listen(9090, ip, r));
  m.track({ close: () => h1.close() });
  m.track({ close: () => h2.close() });
}

test.before(async () => {
  await startApps(m.V1, 'v1');
  await startApps(m.V2, 'v2');
  await m.start(SERVICE);
  h1Fwd = await m.forwarder({ host: m.VIP, port: 80 });
  h2Fwd = await m.forwarder({ host: m.VIP, port: 90 });
});
test.after.always(() => m.close());

/** An HTTP/1.1 request with a chunked body and request trailers (node:http); the response with its trailers. */
function h1WithTrailers(addr: SocketAddr, path: string): Promise<{ status: number; body: any; trailers: NodeJS.Dict<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: addr.ip, port: addr.port, method: 'POST', path, agent: false, headers: { host: 'server.default.svc.cluster.local', trailer: 'x-checksum', te: 'trailers' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), trailers: res.trailers }));
    });
    req.on('error', reject);
    req.write('part one, ');
    req.write('part two');
    req.addTrailers({ 'x-checksum': 'abc123' });
    req.end();
  });
}

/** An HTTP/2 (prior knowledge) request with a body and request trailers (node:http2); the response with its trailers. */
async function h2WithTrailers(addr: SocketAddr, path: string): Promise<{ status: number; body: any; trailers: http2.IncomingHttpHeaders }> {
  const session = http2.connect(`http://${addr.ip}:${addr.port}`);
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const st = session.request({ ':method': 'POST', ':path': path, ':authority': 'server.default.svc.cluster.local', te: 'trailers' }, { waitForTrailers: true });
      st.on('wantTrailers', () => st.sendTrailers({ 'x-checksum': 'def456' }));
      let status = 0;
      let trailers: http2.IncomingHttpHeaders = {};
      let text = '';
      st.setEncoding('utf8');
      st.on('response', (h) => (status = Number(h[':status'])));
      st.on('trailers', (t) => (trailers = t));
      st.on('data', (c: string) => (text += c));
      st.on('end', () => resolve({ status, body: JSON.parse(text), trailers }));
      st.on('error', reject);
      st.end('h2 body');
    });
  } finally {
    session.close();
  }
}

test.serial('HTTP/1.1 chunked request trailers reach an HTTP/1.1 app, and its response trailers come back', async (t) => {
  const r = await h1WithTrailers(h1Fwd, '/h1-h1');
  t.is(r.status, 200);
  t.is(r.body.proto, '1.1');
  t.deepEqual(r.body.trailers, { 'x-checksum': 'abc123' });
  t.is(r.body.bodyLength, 'part one, part two'.length);
  t.regex(r.trailers['x-app-trailer'] ?? '', /^v[12]-h1$/);
});

test.serial('HTTP/2 request trailers reach an HTTP/2 app, and its response trailers come back', async (t) => {
  const r = await h2WithTrailers(h2Fwd, '/h2-h2');
  t.is(r.status, 200);
  t.is(r.body.proto, '2.0');
  t.deepEqual(r.body.trailers, { 'x-checksum': 'def456' });
  t.regex(String(r.trailers['x-app-trailer']), /^v[12]-h2$/);
});

test.serial('HTTP/1.1 client → Service port appProtocol http2: sent upstream as HTTP/2, trailers translated both ways', async (t) => {
  const r = await h1WithTrailers(h2Fwd, '/h1-to-h2');
  t.is(r.status, 200);
  t.is(r.body.proto, '2.0');
  t.is(r.body.url, '/h1-to-h2');
  t.deepEqual(r.body.trailers, { 'x-checksum': 'abc123' });
  t.regex(r.trailers['x-app-trailer'] ?? '', /^v[12]-h2$/);
});

test.serial('HTTP/2 client → Service port appProtocol http: sent upstream as HTTP/1.1 (chunked), trailers translated both ways', async (t) => {
  const r = await h2WithTrailers(h1Fwd, '/h2-to-h1');
  t.is(r.status, 200);
  t.is(r.body.proto, '1.1');
  t.is(r.body.url, '/h2-to-h1');
  t.deepEqual(r.body.trailers, { 'x-checksum': 'def456' });
  t.is(r.body.bodyLength, 'h2 body'.length);
  t.regex(String(r.trailers['x-app-trailer']), /^v[12]-h1$/);
});

test.serial('independent clients: curl (HTTP/1.1) reaches the http2 port as HTTP/2, nghttp (HTTP/2 prior knowledge) reaches the http port as HTTP/1.1', async (t) => {
  const curl = await run('curl', ['-sS', '--http1.1', '-H', 'host: server.default.svc.cluster.local', '--data-binary', 'from curl', `http://${h2Fwd.ip}:${h2Fwd.port}/by-curl`], { timeout: 15_000 });
  const c = JSON.parse(curl.stdout);
  t.is(c.proto, '2.0');
  t.is(c.method, 'POST');
  t.is(c.bodyLength, 'from curl'.length);
  const ng = await run('nghttp', ['-H', ':authority: server.default.svc.cluster.local', `http://${h1Fwd.ip}:${h1Fwd.port}/by-nghttp`], { timeout: 15_000 });
  const n = JSON.parse(ng.stdout);
  t.is(n.proto, '1.1');
  t.is(n.url, '/by-nghttp');
  // nghttp -v shows the frames: the response trailer arrives as a trailing HEADERS frame with END_STREAM.
  const verbose = await run('nghttp', ['-v', '-H', ':authority: server.default.svc.cluster.local', `http://${h1Fwd.ip}:${h1Fwd.port}/by-nghttp-v`], { timeout: 15_000 });
  t.regex(verbose.stdout, /x-app-trailer: v[12]-h1/);
  const logs = m.requestLogs().filter((l) => ['/by-curl', '/by-nghttp'].includes(String(l['path'])));
  t.deepEqual(logs.map((l) => [l['path'], l['protocol'], l['response_code']]).sort(), [
    ['/by-curl', 'HTTP/1.1', 200],
    ['/by-nghttp', 'HTTP/2', 200],
  ]);
});
