import { X509Certificate, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ipBytes } from '../util/ip';
import { OID, TAG, children, expectTag, parseDer } from '../identity/der';
import { derToPem, pemToDer } from '../identity/pem';
import { buildCertificateDer, buildName, extension, keyIdentifier, randomSerial, type GeneralName } from '../identity/x509-build';

/** The dev CA's signing root, loaded from or written to CA_DIR. */
export interface RootAuthority {
  readonly certPem: string;
  /** The root's subject Name DER, used verbatim as the issuer of every leaf. */
  readonly subjectDer: Buffer;
  readonly keyId: Buffer;
  /** Only used to sign; never logged or returned. */
  readonly key: KeyObject;
  readonly serialNumber: string;
  /** True when this start created the root. */
  readonly created: boolean;
}

const ROOT_VALIDITY_MS = 10 * 365 * 86_400_000;
const BACKDATE_MS = 60 * 60_000;

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';

/** Loads CA_DIR/root-{cert,key}.pem, or creates an ECDSA P-256 self-signed root there. */
export async function loadOrCreateRoot(dir: string, trustDomain: string, now: number): Promise<RootAuthority> {
  const certPath = join(dir, ROOT_CERT_FILE);
  const keyPath = join(dir, ROOT_KEY_FILE);
  let certPem: string | null = null;
  try {
    certPem = await readFile(certPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${certPath}: ${(err as Error).message}`);
  }
  if (certPem !== null) return loadRoot(certPath, certPem, keyPath);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const subject = buildName({ o: trustDomain, cn: 'ztunnel-ts dev root CA' });
  const keyId = keyIdentifier(spki);
  const certDer = buildCertificateDer(
    {
      serial: randomSerial(),
      issuerName: subject,
      subjectName: subject,
      notBefore: now - BACKDATE_MS,
      notAfter: now + ROOT_VALIDITY_MS,
      spkiDer: spki,
      extensions: [extension.basicConstraints(true), extension.keyUsage(['digitalSignature', 'keyCertSign', 'cRLSign']), extension.subjectKeyId(spki)],
    },
    privateKey,
  );
  const pem = derToPem(certDer, 'CERTIFICATE');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  await chmod(keyPath, 0o600);
  await writeFile(certPath, pem, { mode: 0o644, flag: 'wx' });
  return { certPem: pem, subjectDer: subject, keyId, key: privateKey, serialNumber: new X509Certificate(pem).serialNumber, created: true };
}

async function loadRoot(certPath: string, certPem: string, keyPath: string): Promise<RootAuthority> {
  const der = pemToDer(certPem, 'CERTIFICATE');
  if (!der) throw new Error(`${certPath} holds no PEM certificate`);
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(keyPath, 'utf8'));
  } catch (err) {
    throw new Error(`cannot load the root key ${keyPath} (${(err as NodeJS.ErrnoException).code ?? 'unparsable'}); it must be the PEM key of ${certPath}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error(`${keyPath} must be an ECDSA P-256 key (the dev CA signs ecdsa-with-SHA256), got ${key.asymmetricKeyType ?? 'unknown'}`);
  const x = new X509Certificate(certPem);
  if (!x.checkPrivateKey(key)) throw new Error(`${keyPath} is not the key of ${certPath}`);
  if (!x.ca) throw new Error(`${certPath} is not a CA certificate (basicConstraints CA:true)`);
  const tbs = children(expectTag(children(expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate'))[0], TAG.SEQUENCE, 'TBSCertificate'));
  const offset = tbs[0]?.tag === 0xa0 ? 1 : 0; // explicit version
  const subject = expectTag(tbs[offset + 4], TAG.SEQUENCE, 'subject');
  const spki = x.publicKey.export({ type: 'spki', format: 'der' });
  return { certPem: derToPem(der, 'CERTIFICATE'), subjectDer: Buffer.from(subject.raw), keyId: keyIdentifier(spki), key, serialNumber: x.serialNumber, created: false };
}

/** The CA's own TLS certificate: DNS/IP SANs from CA_SERVER_SANS, a fresh key per start. */
export function issueServingCertificate(root: RootAuthority, sans: readonly string[], now: number): { certPem: string; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const names: GeneralName[] = sans.map((s) => (isIP(s) ? { ip: ipBytes(s) as Uint8Array } : { dns: s }));
  const certDer = buildCertificateDer(
    {
      serial: randomSerial(),
      issuerName: root.subjectDer,
      subjectName: buildName({ cn: 'ztunnel-ts dev CA' }),
      notBefore: now - BACKDATE_MS,
      notAfter: now + 365 * 86_400_000,
      spkiDer: spki,
      extensions: [extension.basicConstraints(false), extension.keyUsage(['digitalSignature', 'keyEncipherment']), extension.extKeyUsage([OID.serverAuth]), extension.subjectAltName(names, false), extension.authorityKeyId(root.keyId)],
    },
    root.key,
  );
  return { certPem: derToPem(certDer, 'CERTIFICATE'), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
