import test from 'ava';
import { X509Certificate, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ProxyError } from '../../../src/errors';
import { buildWorkloadCertificate, inspectCertificate } from '../../../src/identity/certificate';
import { derToPem, splitPemCertificates } from '../../../src/identity/pem';
import { SpiffeId } from '../../../src/identity/spiffe';
import { OID } from '../../../src/identity/der';
import { buildCertificateDer, buildName, extension, keyIdentifier, randomSerial } from '../../../src/identity/x509-build';

const ID = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
const HOUR = 3600_000;

interface Ca {
  pem: string;
  name: Buffer;
  key: KeyObject;
  keyId: Buffer;
}

function ca(cn: string, issuer?: Ca): Ca {
  const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = kp.publicKey.export({ type: 'spki', format: 'der' });
  const name = buildName({ cn });
  const der = buildCertificateDer(
    { serial: randomSerial(), issuerName: issuer?.name ?? name, subjectName: name, notBefore: Date.now() - HOUR, notAfter: Date.now() + 10 * HOUR, spkiDer: spki, extensions: [extension.basicConstraints(true), extension.keyUsage(['keyCertSign', 'cRLSign']), extension.subjectKeyId(spki)] },
    issuer?.key ?? kp.privateKey,
  );
  return { pem: derToPem(der, 'CERTIFICATE'), name, key: kp.privateKey, keyId: keyIdentifier(spki) };
}

function leaf(issuer: Ca, uri: string, notBefore = Date.now() - 60_000, notAfter = Date.now() + HOUR): { pem: string; keyPem: string } {
  const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const der = buildCertificateDer(
    { serial: randomSerial(), issuerName: issuer.name, subjectName: buildName({}), notBefore, notAfter, spkiDer: kp.publicKey.export({ type: 'spki', format: 'der' }), extensions: [extension.basicConstraints(false), extension.extKeyUsage([OID.serverAuth, OID.clientAuth]), extension.subjectAltName([{ uri }], true), extension.authorityKeyId(issuer.keyId)] },
    issuer.key,
  );
  return { pem: derToPem(der, 'CERTIFICATE'), keyPem: kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function build(keyPem: string, chain: string[], roots: string[], now = Date.now()) {
  return buildWorkloadCertificate({ identity: ID, keyPem, chainPem: chain, rootsPem: roots, now, source: 'https://ca.test:15012' });
}

function rejects(t: import('ava').ExecutionContext, fn: () => unknown, why: RegExp): void {
  const err = t.throws(fn) as ProxyError;
  t.true(err instanceof ProxyError);
  t.is(err.reason, 'CA_BAD_RESPONSE');
  t.regex(err.message, /CA https:\/\/ca\.test:15012 returned a bad certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/app/);
  t.regex(err.message, why);
  t.notRegex(err.message, /PRIVATE KEY/);
}

test('root → intermediate → leaf chain builds a frozen certificate with no key field', (t) => {
  const root = ca('root');
  const mid = ca('intermediate', root);
  const l = leaf(mid, ID.toString());
  const c = build(l.keyPem, [l.pem, mid.pem], [root.pem]);
  t.true(Object.isFrozen(c));
  t.is(c.serialNumber, new X509Certificate(l.pem).serialNumber);
  t.is(c.chainPem.length, 2);
  t.false('key' in c || 'keyPem' in c || 'privateKey' in c);
  t.deepEqual(inspectCertificate(l.pem).uris, [ID.toString()]);
});

test('several roots in the last element (root rotation): any of them may anchor the chain', (t) => {
  const oldRoot = ca('old-root');
  const newRoot = ca('new-root');
  const l = leaf(newRoot, ID.toString());
  const roots = splitPemCertificates(oldRoot.pem + newRoot.pem);
  t.is(roots.length, 2);
  t.is(build(l.keyPem, [l.pem], roots).rootsPem.length, 2);
});

test('rejects a leaf naming another identity', (t) => {
  const root = ca('root');
  const l = leaf(root, 'spiffe://cluster.local/ns/default/sa/db');
  rejects(t, () => build(l.keyPem, [l.pem], [root.pem]), /leaf URI SAN is \["spiffe:\/\/cluster\.local\/ns\/default\/sa\/db"\], expected exactly/);
});

test('rejects a leaf that does not match our key', (t) => {
  const root = ca('root');
  const l = leaf(root, ID.toString());
  const other = leaf(root, ID.toString());
  rejects(t, () => build(other.keyPem, [l.pem], [root.pem]), /does not match the CSR key/);
});

test('rejects an untrusted root, a truncated chain, an expired and a not-yet-valid leaf, each with its own message', (t) => {
  const root = ca('root');
  const stranger = ca('stranger');
  const mid = ca('intermediate', root);
  const l = leaf(root, ID.toString());
  rejects(t, () => build(l.keyPem, [l.pem], [stranger.pem]), /does not lead to any returned root/);
  const viaMid = leaf(mid, ID.toString());
  rejects(t, () => build(viaMid.keyPem, [viaMid.pem], [root.pem]), /does not lead to any returned root/);
  rejects(t, () => build(viaMid.keyPem, [viaMid.pem, stranger.pem], [root.pem]), /chain element 0 is not signed by element 1/);
  const expired = leaf(root, ID.toString(), Date.now() - 2 * HOUR, Date.now() - HOUR);
  rejects(t, () => build(expired.keyPem, [expired.pem], [root.pem]), /leaf expired at/);
  const future = leaf(root, ID.toString(), Date.now() + 2 * HOUR, Date.now() + 3 * HOUR);
  rejects(t, () => build(future.keyPem, [future.pem], [root.pem]), /not valid before .*clock skew/);
  rejects(t, () => build(l.keyPem, [], [root.pem]), /empty certificate chain/);
  rejects(t, () => build(l.keyPem, [l.pem], []), /no root certificate/);
  rejects(t, () => build(l.keyPem, ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], [root.pem]), /unparsable certificate/);
});
