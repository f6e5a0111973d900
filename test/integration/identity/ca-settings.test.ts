import test from 'ava';
import { createServer, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IstioCaClient } from '../../../src/identity/ca-client';
import { MAX_TOKEN_BYTES } from '../../../src/identity/ca-credentials';
import { generateCsr } from '../../../src/identity/csr';
import { SpiffeId } from '../../../src/identity/spiffe';
import { ProxyError } from '../../../src/errors';
import { loadNodeConfig } from '../../../src/config/node-config';
import { ConfigError } from '../../../src/config/load';
import { harness } from './harness';

const APP = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
const warnings: Error[] = [];
process.on('warning', (w) => warnings.push(w));

function request(c: IstioCaClient): Promise<unknown> {
  return c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 3600 });
}

test('CA_HEADER_<NAME> variables reach the real dev CA as gRPC metadata on the CA call', async (t) => {
  const h = await harness(t);
  const { config } = loadNodeConfig({ CA_HEADER_X_TENANT: 'blue', 'CA_HEADER_Request-Source': ' ztunnel ' }, []);
  t.deepEqual(config.caHeaders, [
    ['request-source', 'ztunnel'],
    ['x_tenant', 'blue'],
  ]);
  const c = new IstioCaClient({ address: `https://${h.ca.address}`, rootCa: h.ca.rootCertPath, altHostname: null, authToken: 'app-token', clusterId: 'Kubernetes', headers: config.caHeaders });
  t.teardown(() => c.close());
  await request(c);
  const issued = h.caLogs.find((l) => l['msg'] === 'issued certificate');
  t.is(issued.length, 1);
  t.deepEqual(issued[0]!['metadata'], { clusterid: 'Kubernetes', 'request-source': 'ztunnel', x_tenant: 'blue' });
});

test('bad CA_HEADER_ names are refused at start-up naming the variable; values never printed', (t) => {
  const err = t.throws(() => loadNodeConfig({ CA_HEADER_AUTHORIZATION: 'Bearer sneaky', 'CA_HEADER_X Y': 'v', CA_HEADER_X_BIN: 'v' }, []), { instanceOf: ConfigError }) as ConfigError;
  t.is(err.issues.length, 1, 'the first bad header is reported for the prefix key');
  t.is(err.issues[0]!.key, 'CA_HEADER_<NAME>');
  t.regex(err.issues[0]!.expected, /^CA_HEADER_AUTHORIZATION: a name other than authorization/);
  t.notRegex(err.message, /sneaky/);
  t.regex((t.throws(() => loadNodeConfig({ 'CA_HEADER_grpc-status': '1' }, [])) as ConfigError).message, /CA_HEADER_grpc-status/);
  t.regex((t.throws(() => loadNodeConfig({ 'CA_HEADER_X Y': 'v' }, [])) as ConfigError).message, /CA_HEADER_X Y: a metadata name/);
});

/** Reads one TLS ClientHello from a raw TCP peer and returns its server_name (or null). */
function captureSni(): Promise<{ port: number; sni: Promise<string | null>; close: () => void }> {
  return new Promise((resolve) => {
    let deliver: (v: string | null) => void = () => undefined;
    const sni = new Promise<string | null>((r) => (deliver = r));
    const sockets: Socket[] = [];
    const server = createServer((s) => {
      sockets.push(s);
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 5 || buf.length < 5 + buf.readUInt16BE(3)) return;
        deliver(serverNameOf(buf.subarray(5, 5 + buf.readUInt16BE(3))));
        s.destroy();
      });
      s.on('error', () => undefined);
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ port, sni, close: () => (sockets.forEach((s) => s.destroy()), server.close()) });
    });
  });
}

/** server_name (extension 0) of a ClientHello handshake message, by RFC 8446's layout. */
function serverNameOf(hs: Buffer): string | null {
  let o = 4 + 2 + 32; // handshake header, legacy_version, random
  o += 1 + hs[o]!; // session id
  o += 2 + hs.readUInt16BE(o); // cipher suites
  o += 1 + hs[o]!; // compression methods
  const end = o + 2 + hs.readUInt16BE(o);
  for (o += 2; o + 4 <= end; ) {
    const type = hs.readUInt16BE(o);
    const len = hs.readUInt16BE(o + 2);
    if (type === 0) return hs.subarray(o + 9, o + 9 + hs.readUInt16BE(o + 7)).toString('ascii');
    o += 4 + len;
  }
  return null;
}

test('the CA client sends no SNI to an IP address (no DEP0123), the host name otherwise, ALT_CA_HOSTNAME when set', async (t) => {
  const cases: Array<[host: string, alt: string | null, want: string | null]> = [
    ['127.0.0.1', null, null],
    ['localhost', null, 'localhost'],
    ['127.0.0.1', 'istiod.istio-system.svc', 'istiod.istio-system.svc'],
  ];
  for (const [host, alt, want] of cases) {
    const peer = await captureSni();
    const c = new IstioCaClient({ address: `https://${host}:${peer.port}`, rootCa: 'SYSTEM', altHostname: alt, authToken: '', clusterId: 'Kubernetes', connectTimeoutMs: 2000, requestTimeoutMs: 1000 });
    const failed = request(c).catch((e: unknown) => e);
    t.is(await peer.sni, want, `${host} alt=${String(alt)}`);
    t.true((await failed) instanceof ProxyError);
    c.close();
    peer.close();
  }
  await new Promise((r) => setImmediate(r));
  t.deepEqual(warnings.map((w) => (w as { code?: string }).code ?? w.name), [], 'no process warning (DEP0123) was emitted');
});

test('the real dev CA on 127.0.0.1 issues over an SNI-less connection (its certificate is verified against the IP)', async (t) => {
  const h = await harness(t);
  const c = new IstioCaClient({ address: `https://${h.ca.address}`, rootCa: h.ca.rootCertPath, altHostname: null, authToken: 'app-token', clusterId: 'Kubernetes' });
  t.teardown(() => c.close());
  t.truthy(await request(c));
  await new Promise((r) => setImmediate(r));
  t.false(warnings.some((w) => (w as { code?: string }).code === 'DEP0123'));
});

test('an oversized bearer token fails at once with CA_AUTH naming the limit, and the CA never sees it', async (t) => {
  const h = await harness(t);
  const file = join(h.dir, 'big-token');
  writeFileSync(file, 'x'.repeat(10 * MAX_TOKEN_BYTES));
  const logged = h.caLogs.lines.length;
  for (const authToken of [file, 'y'.repeat(MAX_TOKEN_BYTES + 1)]) {
    // A deadline far beyond the test's own timeout: the failure must not come from it.
    const c = new IstioCaClient({ address: `https://${h.ca.address}`, rootCa: h.ca.rootCertPath, altHostname: null, authToken, clusterId: 'Kubernetes', requestTimeoutMs: 600_000 });
    const err = (await t.throwsAsync(request(c))) as ProxyError;
    c.close();
    t.is(err.reason, 'CA_AUTH');
    t.regex(err.message, new RegExp(`longer than ${MAX_TOKEN_BYTES} bytes`));
  }
  t.is(h.ca.stats().arrivals.length, 0);
  t.is(h.caLogs.lines.length, logged, 'the CA logged no request');
});
