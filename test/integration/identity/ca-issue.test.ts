import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { IstioCaClient } from '../../../src/identity/ca-client';
import { generateCsr } from '../../../src/identity/csr';
import { SpiffeId } from '../../../src/identity/spiffe';
import { ProxyError } from '../../../src/errors';
import { CALLERS, harness } from './harness';

const APP = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');

function client(address: string, rootCa: string, token: string, altHostname: string | null = null): IstioCaClient {
  return new IstioCaClient({ address: `https://${address}`, rootCa, altHostname, authToken: token, clusterId: 'Kubernetes' });
}

async function reject(t: import('ava').ExecutionContext, p: Promise<unknown>): Promise<ProxyError> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof ProxyError, `expected ProxyError, got ${String(err)}`);
  return err as ProxyError;
}

test('happy path: own identity, SAN + validity + chain to the CA root (real gRPC over TLS)', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const { csrPem } = generateCsr(APP);
  const started = process.hrtime.bigint();
  const res = await c.createCertificate({ identity: APP, csrPem, impersonate: false, validitySeconds: 3600 });
  t.log(`CSR+issue round trip: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(1)} ms (includes channel setup)`);
  t.is(res.chainPem.length, 1);
  t.is(res.rootsPem.length, 1);
  const leaf = new X509Certificate(res.chainPem[0] as string);
  const root = new X509Certificate(res.rootsPem[0] as string);
  t.is(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/app');
  t.falsy(leaf.subject, 'empty subject');
  t.true(leaf.checkIssued(root) && leaf.verify(root.publicKey), 'leaf signed by the root');
  t.is(root.fingerprint256, new X509Certificate(readFileSync(h.ca.rootCertPath)).fingerprint256);
  const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  t.true(Math.abs(lifetime - (3600_000 + 60_000)) <= 1000, `validity ${lifetime}ms = requested 1h + 60s backdate`);
  t.regex(leaf.keyUsage ? leaf.keyUsage.join(',') : '', /1\.3\.6\.1\.5\.5\.7\.3\.1.*1\.3\.6\.1\.5\.5\.7\.3\.2|serverAuth.*clientAuth/);
  t.false(leaf.ca);
  t.is(h.ca.stats().issued, 1);
  const issued = h.caLogs.find((l) => l['msg'] === 'issued certificate');
  t.is(issued.length, 1);
  t.is(issued[0]!['identity'], APP.toString());
  t.is(issued[0]!['serial'], leaf.serialNumber);
});

test('validity is capped by CA_MAX_TTL', async (t) => {
  const h = await harness(t, { maxTtlMs: 600_000 });
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const res = await c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 86400 });
  const leaf = new X509Certificate(res.chainPem[0] as string);
  t.true(Math.abs(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom) - 660_000) <= 1000);
});

test('impersonation allowed: trusted node account, workload runs on the caller node', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'node-a-token');
  t.teardown(() => c.close());
  const db = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/db');
  const res = await c.createCertificate({ identity: db, csrPem: generateCsr(db).csrPem, impersonate: true, validitySeconds: 3600 });
  t.is(new X509Certificate(res.chainPem[0] as string).subjectAltName, `URI:${db}`);
  const line = h.caLogs.find((l) => l['msg'] === 'issued certificate')[0]!;
  t.is(line['caller'], 'istio-system/ztunnel@node-a');
  t.is(line['impersonated'], true);
});

test('impersonation denied: workload on another node → CA_AUTH naming caller and identity', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'node-a-token');
  t.teardown(() => c.close());
  const other = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/other');
  const err = await reject(t, c.createCertificate({ identity: other, csrPem: generateCsr(other).csrPem, impersonate: true, validitySeconds: 3600 }));
  t.is(err.reason, 'CA_AUTH');
  t.regex(err.message, /istio-system\/ztunnel/);
  t.regex(err.message, /node "node-a"/);
  t.regex(err.message, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/other/);
  t.regex(err.message, /no workload with that identity runs on that node/);
  t.regex(err.message, /CA https:\/\/127\.0\.0\.1:\d+/);
  t.is(h.ca.stats().issued, 0);
});

test('impersonation denied: caller not in CA_TRUSTED_NODE_ACCOUNTS → CA_AUTH', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'rogue-token');
  t.teardown(() => c.close());
  const err = await reject(t, c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: true, validitySeconds: 3600 }));
  t.is(err.reason, 'CA_AUTH');
  t.regex(err.message, /caller default\/rogue may not impersonate spiffe:\/\/cluster\.local\/ns\/default\/sa\/app: not in CA_TRUSTED_NODE_ACCOUNTS/);
});

test('wrong and missing token → CA_AUTH; the token never appears in the error', async (t) => {
  const h = await harness(t);
  const wrong = client(h.ca.address, h.ca.rootCertPath, 'not-a-known-token-4711');
  const missing = client(h.ca.address, h.ca.rootCertPath, './does/not/exist/istio-token');
  t.teardown(() => (wrong.close(), missing.close()));
  const e1 = await reject(t, wrong.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(e1.reason, 'CA_AUTH');
  t.regex(e1.message, /unknown bearer token/);
  t.notRegex(e1.message, /4711/);
  const e2 = await reject(t, missing.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(e2.reason, 'CA_AUTH');
  t.regex(e2.message, /missing bearer token/);
});

test('AUTH_TOKEN as a file path is re-read on every call', async (t) => {
  const h = await harness(t);
  const { writeFileSync } = await import('node:fs');
  const tokenFile = `${h.dir}/istio-token`;
  writeFileSync(tokenFile, 'rogue-token\n');
  const c = client(h.ca.address, h.ca.rootCertPath, tokenFile);
  t.teardown(() => c.close());
  const rogue = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/rogue');
  await c.createCertificate({ identity: rogue, csrPem: generateCsr(rogue).csrPem, impersonate: false, validitySeconds: 60 });
  writeFileSync(tokenFile, 'app-token\n');
  const res = await c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 });
  t.is(new X509Certificate(res.chainPem[0] as string).subjectAltName, `URI:${APP}`);
});

test('CSR SAN mismatch → CA_REJECTED with a message saying so', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const db = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/db');
  // The app asks for its own identity but sends a CSR naming default/db.
  const err = await reject(t, c.createCertificate({ identity: APP, csrPem: generateCsr(db).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(err.reason, 'CA_REJECTED');
  t.regex(err.message, /INVALID_ARGUMENT: CSR URI SAN \["spiffe:\/\/cluster\.local\/ns\/default\/sa\/db"\] does not match the authorised identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/app/);
});

test('malformed CSR and bad CSR signature → CA_REJECTED', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const e1 = await reject(t, c.createCertificate({ identity: APP, csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n', impersonate: false, validitySeconds: 60 }));
  t.is(e1.reason, 'CA_REJECTED');
  t.regex(e1.message, /malformed CSR/);
  const good = generateCsr(APP).csrPem;
  const der = Buffer.from(good.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0xff; // flip a signature byte
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const e2 = await reject(t, c.createCertificate({ identity: APP, csrPem: tampered, impersonate: false, validitySeconds: 60 }));
  t.is(e2.reason, 'CA_REJECTED');
  t.regex(e2.message, /signature/);
});

test('wrong CA_ROOT_CA → CA_TLS (a TLS failure to the CA is named as such)', async (t) => {
  const h = await harness(t);
  const other = await harness(t); // a second CA with its own root
  const c = client(h.ca.address, other.ca.rootPem, 'app-token');
  t.teardown(() => c.close());
  const err = await reject(t, c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(err.reason, 'CA_TLS');
  t.log(err.message);
});

test('ALT_CA_HOSTNAME: a CA certificate without the dialled IP verifies against the override name', async (t) => {
  const h = await harness(t, { serverSans: ['istiod.istio-system.svc'] });
  const plain = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  const alt = client(h.ca.address, h.ca.rootCertPath, 'app-token', 'istiod.istio-system.svc');
  t.teardown(() => (plain.close(), alt.close()));
  const err = await reject(t, plain.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(err.reason, 'CA_TLS');
  const res = await alt.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 });
  t.is(res.chainPem.length, 1);
});

test('CA down → CA_UNREACHABLE naming the address', async (t) => {
  const h = await harness(t);
  const address = h.ca.address;
  await h.ca.close();
  const c = client(address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const err = await reject(t, c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(err.reason, 'CA_UNREACHABLE');
  t.true(err.message.includes(address));
  t.is(CALLERS.length, 4);
});

test('a root minted by certs/gen-dev-root.sh (OpenSSL) is loaded by the dev CA and anchors its leaves', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'ztunnel-ts-gen-root-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(__dirname, '..', '..', '..', '..', 'certs', 'gen-dev-root.sh');
  try {
    execFileSync(script, [join(dir, 'ca')], { stdio: 'pipe' });
  } catch (err) {
    t.log(`gen-dev-root.sh failed (is openssl installed?): ${String(err)}`);
    throw err;
  }
  const h = await harness(t, { dir: join(dir, 'ca') });
  t.truthy(h.caLogs.find((l) => l['msg'] === 'loaded dev root CA' && l['created'] === false)[0]);
  const c = client(h.ca.address, join(dir, 'ca', 'root-cert.pem'), 'app-token');
  t.teardown(() => c.close());
  const res = await c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 });
  const leaf = new X509Certificate(res.chainPem[0] as string);
  t.true(leaf.checkIssued(new X509Certificate(readFileSync(join(dir, 'ca', 'root-cert.pem')))));
});

test('several concatenated roots in the last cert_chain element are split; the workload trusts all of them', async (t) => {
  const other = await harness(t);
  const h = await harness(t, { extraRootsPem: [other.ca.rootPem] });
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  const res = await c.createCertificate({ identity: APP, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 });
  t.is(res.chainPem.length, 1);
  t.deepEqual(res.rootsPem.map((p) => new X509Certificate(p).fingerprint256), [new X509Certificate(h.ca.rootPem).fingerprint256, new X509Certificate(other.ca.rootPem).fingerprint256]);
});

test('a leaf naming another identity than requested → CA_BAD_RESPONSE (on the CA path)', async (t) => {
  const h = await harness(t);
  const c = client(h.ca.address, h.ca.rootCertPath, 'app-token');
  t.teardown(() => c.close());
  // We want default/db, without impersonation: the CA authorises the token's own identity
  // (default/app), the CSR names default/app, so the CA issues default/app.
  const db = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/db');
  const err = await reject(t, c.createCertificate({ identity: db, csrPem: generateCsr(APP).csrPem, impersonate: false, validitySeconds: 60 }));
  t.is(err.reason, 'CA_BAD_RESPONSE');
  t.regex(err.message, /certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/db from CA .*leaf URI SAN \["spiffe:\/\/cluster\.local\/ns\/default\/sa\/app"\] is not the requested identity/);
  t.is(h.ca.stats().issued, 1);
});
