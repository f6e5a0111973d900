import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ProxyError } from '../errors';
import { HBONE_SECURE_CONTEXT_OPTIONS } from './tls-profile';
import type { SpiffeId } from './spiffe';
import type { WorkloadCertificate } from './types';

/** What the data path and the dump need from a certificate, parsed once. */
export interface CertInfo {
  readonly serialNumber: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** URI SANs in order (SPIFFE ids for workload certificates). */
  readonly uris: readonly string[];
}

/** Serial (upper-case hex), validity and URI SANs of one PEM certificate. */
export function inspectCertificate(pem: string): CertInfo {
  const x = new X509Certificate(pem);
  return { serialNumber: x.serialNumber, notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), uris: uriSans(x) };
}

/** URI entries of subjectAltName (`URI:a, DNS:b`); Node quotes values with special characters. */
export function uriSans(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (!san) return [];
  return san
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => {
      const v = s.slice(4);
      return v.startsWith('"') ? (JSON.parse(v) as string) : v;
    });
}

/** Clock skew we accept on a fresh certificate's notBefore (the CA may run ahead). */
const NOT_BEFORE_SKEW_MS = 5 * 60_000;

export interface CertificateParts {
  readonly identity: SpiffeId;
  /** PKCS#8 PEM of the key the CSR was made with; only handed to createSecureContext. */
  readonly keyPem: string;
  /** Leaf first, then intermediates. */
  readonly chainPem: readonly string[];
  readonly rootsPem: readonly string[];
  readonly now: number;
  /** Used in error messages: the CA the chain came from. */
  readonly source: string;
}

/**
 * Checks a CA answer and builds the one SecureContext this certificate will ever have.
 * Rejects (CA_BAD_RESPONSE) a leaf that names another identity, does not match our key,
 * does not chain to one of the returned roots, or is already expired. The key is only
 * captured by the SecureContext; the returned object has no key field and is frozen.
 */
export function buildWorkloadCertificate(p: CertificateParts): WorkloadCertificate {
  const bad = (why: string): ProxyError => new ProxyError('CA_BAD_RESPONSE', `CA ${p.source} returned a bad certificate for ${p.identity}: ${why}`, { identity: p.identity.toString(), ca: p.source });
  if (p.chainPem.length === 0) throw bad('empty certificate chain');
  if (p.rootsPem.length === 0) throw bad('no root certificate in the response');
  let chain: X509Certificate[];
  let roots: X509Certificate[];
  try {
    chain = p.chainPem.map((c) => new X509Certificate(c));
    roots = p.rootsPem.map((c) => new X509Certificate(c));
  } catch (err) {
    throw bad(`unparsable certificate (${err instanceof Error ? err.message : String(err)})`);
  }
  const leaf = chain[0] as X509Certificate;
  const uris = uriSans(leaf);
  if (uris.length !== 1 || uris[0] !== p.identity.toString()) throw bad(`leaf URI SAN is ${JSON.stringify(uris)}, expected exactly ${p.identity}`);
  if (!leaf.checkPrivateKey(createPrivateKey(p.keyPem))) throw bad('leaf public key does not match the CSR key');
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) throw bad(`chain element ${i} is not signed by element ${i + 1}`);
  }
  const top = chain[chain.length - 1] as X509Certificate;
  if (!roots.some((r) => top.checkIssued(r) && top.verify(r.publicKey))) throw bad('chain does not lead to any returned root');
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (notAfter <= p.now) throw bad(`leaf expired at ${new Date(notAfter).toISOString()}`);
  if (notBefore > p.now + NOT_BEFORE_SKEW_MS) throw bad(`leaf not valid before ${new Date(notBefore).toISOString()} (clock skew?)`);
  const secureContext = createSecureContext({ key: p.keyPem, cert: p.chainPem.join(''), ca: [...p.rootsPem], ...HBONE_SECURE_CONTEXT_OPTIONS });
  return Object.freeze({
    identity: p.identity,
    chainPem: Object.freeze([...p.chainPem]),
    rootsPem: Object.freeze([...p.rootsPem]),
    serialNumber: leaf.serialNumber,
    notBefore,
    notAfter,
    secureContext,
  });
}
