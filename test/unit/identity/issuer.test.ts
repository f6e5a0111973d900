import test from 'ava';
import { execFileSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueLeaf } from '../../../src/ca/issuer';
import { issueServingCertificate, loadOrCreateRoot } from '../../../src/ca/root';
import { SpiffeId } from '../../../src/identity/spiffe';
import { hasOpenssl } from '../../helpers/openssl';

const ID = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');


(hasOpenssl() ? test : test.skip)('dev CA root, serving and leaf certificates as OpenSSL reads them; the leaf verifies against the root', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztunnel-ts-issuer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = await loadOrCreateRoot(join(dir, 'ca'), 'cluster.local', Date.now());
  t.true(root.created);
  const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const leaf = issueLeaf(root, kp.publicKey.export({ type: 'spki', format: 'der' }), ID, 3600_000, Date.now());
  writeFileSync(join(dir, 'leaf.pem'), leaf.pem);
  const serving = issueServingCertificate(root, ['localhost', '127.0.0.1', '::1'], Date.now());
  writeFileSync(join(dir, 'serving.pem'), serving.certPem);
  const rootFile = join(dir, 'ca', 'root-cert.pem');

  const run = (args: string[]): string => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const leafText = run(['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text']);
  t.regex(leafText, /X509v3 Subject Alternative Name: critical\s*\n\s*URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/app\s*\n/);
  t.regex(leafText, /X509v3 Key Usage: critical\s*\n\s*Digital Signature, Key Encipherment\s*\n/);
  t.regex(leafText, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication, TLS Web Client Authentication/);
  t.regex(leafText, /X509v3 Basic Constraints: critical\s*\n\s*CA:FALSE/);
  t.regex(leafText, /Signature Algorithm: ecdsa-with-SHA256/);
  t.regex(leafText, /X509v3 Authority Key Identifier/);
  const rootText = run(['x509', '-in', rootFile, '-noout', '-text']);
  t.regex(rootText, /CA:TRUE/);
  t.regex(rootText, /Certificate Sign, CRL Sign/);
  t.regex(rootText, /Subject: O\s*=\s*cluster\.local, CN\s*=\s*ztunnel-ts dev root CA/);
  t.regex(run(['verify', '-CAfile', rootFile, join(dir, 'leaf.pem')]), /leaf\.pem: OK/);
  t.regex(run(['verify', '-CAfile', rootFile, '-purpose', 'sslserver', join(dir, 'serving.pem')]), /serving\.pem: OK/);
  const servingText = run(['x509', '-in', join(dir, 'serving.pem'), '-noout', '-text']);
  t.regex(servingText, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
  t.is(new X509Certificate(leaf.pem).serialNumber, leaf.serialNumber);
  t.is(leaf.serialNumber.length, 32, '128-bit random serial');

  const again = await loadOrCreateRoot(join(dir, 'ca'), 'cluster.local', Date.now());
  t.false(again.created);
  t.true(again.subjectDer.equals(root.subjectDer));
  t.is(again.serialNumber, root.serialNumber);
  const leaf2 = issueLeaf(again, kp.publicKey.export({ type: 'spki', format: 'der' }), ID, 60_000, Date.now());
  t.true(new X509Certificate(leaf2.pem).checkIssued(new X509Certificate(root.certPem)), 'a reloaded root issues leaves that chain to it');
});

test('a root directory with a key that does not match the certificate is refused', async (t) => {
  const a = mkdtempSync(join(tmpdir(), 'ztunnel-ts-issuer-a-'));
  const b = mkdtempSync(join(tmpdir(), 'ztunnel-ts-issuer-b-'));
  t.teardown(() => (rmSync(a, { recursive: true, force: true }), rmSync(b, { recursive: true, force: true })));
  await loadOrCreateRoot(a, 'cluster.local', Date.now());
  const other = await loadOrCreateRoot(b, 'cluster.local', Date.now());
  writeFileSync(join(a, 'root-cert.pem'), other.certPem);
  await t.throwsAsync(loadOrCreateRoot(a, 'cluster.local', Date.now()), { message: /root-key\.pem is not the key of .*root-cert\.pem/ });
});
