import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCsr } from '../../../src/identity/csr';
import { SpiffeId } from '../../../src/identity/spiffe';
import { hasOpenssl } from '../../helpers/openssl';
import { CsrError, verifyCsr } from '../../../src/ca/csr-verify';
import { derToPem } from '../../../src/identity/pem';
import { buildCsrDer } from '../../../src/identity/x509-build';

const ID = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');


test('CSR: P-256 PKCS#8 key, verifies, exactly one URI SAN = the identity', (t) => {
  const { csrPem, keyPem } = generateCsr(ID);
  t.regex(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  t.regex(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const v = verifyCsr(csrPem);
  t.deepEqual(v.uris, [ID.toString()]);
  const pub = createPublicKey({ key: v.spkiDer, format: 'der', type: 'spki' });
  t.is(pub.asymmetricKeyType, 'ec');
  t.is(pub.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.not(generateCsr(ID).csrPem, csrPem, 'a fresh key per CSR');
});

(hasOpenssl() ? test : test.skip)('CSR as OpenSSL reads it (independent parser): empty subject, critical URI SAN, ecdsa-with-SHA256, signature OK', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztunnel-ts-csr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'req.pem');
  writeFileSync(file, generateCsr(ID).csrPem);
  const text = execFileSync('openssl', ['req', '-in', file, '-noout', '-text', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.regex(text, /Subject:\s*\n/);
  t.regex(text, /X509v3 Subject Alternative Name: critical\s*\n\s*URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/app\s*\n/);
  t.regex(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.regex(text, /ASN1 OID: prime256v1/);
  t.notRegex(text, /DNS:|IP Address:|email:/);
});

test('verifyCsr: malformed input and foreign signatures are CsrErrors with a reason', (t) => {
  t.throws(() => verifyCsr('not pem'), { instanceOf: CsrError, message: /not a PEM "CERTIFICATE REQUEST"/ });
  t.throws(() => verifyCsr(derToPem(Buffer.from([0x30, 0x03, 0x02, 0x01]), 'CERTIFICATE REQUEST')), { instanceOf: CsrError, message: /malformed CSR/ });
  // Signed by a different key than the one inside: the self-signature must fail.
  const inner = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const forged = buildCsrDer(inner.publicKey.export({ type: 'spki', format: 'der' }), ID.toString(), other.privateKey);
  t.throws(() => verifyCsr(derToPem(forged, 'CERTIFICATE REQUEST')), { instanceOf: CsrError, message: /signature does not verify/ });
});
