import { createPublicKey, verify } from 'node:crypto';
import { OID, TAG, bitStringBytes, children, decodeOid, expectTag, parseDer, type DerNode } from '../identity/der';
import { pemToDer } from '../identity/pem';

/** A CSR the CA accepted as well-formed and correctly self-signed. */
export interface VerifiedCsr {
  /** SubjectPublicKeyInfo DER, copied into the issued certificate. */
  readonly spkiDer: Buffer;
  /** URI SANs requested in the extensionRequest attribute. */
  readonly uris: readonly string[];
}

/** Why a CSR was refused; the message is returned to the client as INVALID_ARGUMENT. */
export class CsrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrError';
  }
}

const SIGNATURE_ALGORITHMS = new Set<string>([OID.ecdsaWithSha256, OID.sha256WithRsa]);

/**
 * Parses a PEM PKCS#10 request (RFC 2986) and checks its self-signature over the exact
 * CertificationRequestInfo bytes. Only SHA-256 signatures are accepted.
 */
export function verifyCsr(pem: string): VerifiedCsr {
  const raw = pemToDer(pem, 'CERTIFICATE REQUEST') ?? pemToDer(pem, 'NEW CERTIFICATE REQUEST');
  if (!raw) throw new CsrError('csr is not a PEM "CERTIFICATE REQUEST" block');
  let info: DerNode;
  let spki: DerNode;
  let attrs: DerNode | undefined;
  let sig: Buffer;
  let algOid: string;
  try {
    const [infoNode, alg, sigNode] = children(expectTag(parseDer(raw), TAG.SEQUENCE, 'CertificationRequest'));
    info = expectTag(infoNode, TAG.SEQUENCE, 'CertificationRequestInfo');
    algOid = decodeOid(expectTag(children(expectTag(alg, TAG.SEQUENCE, 'signatureAlgorithm'))[0], TAG.OID, 'signatureAlgorithm'));
    sig = bitStringBytes(expectTag(sigNode, TAG.BIT_STRING, 'signature'));
    const fields = children(info);
    expectTag(fields[0], TAG.INTEGER, 'version');
    expectTag(fields[1], TAG.SEQUENCE, 'subject');
    spki = expectTag(fields[2], TAG.SEQUENCE, 'subjectPKInfo');
    attrs = fields[3];
  } catch (err) {
    throw new CsrError(`malformed CSR: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!SIGNATURE_ALGORITHMS.has(algOid)) throw new CsrError(`CSR signature algorithm ${algOid} is not accepted (use ECDSA or RSA with SHA-256)`);
  let ok: boolean;
  try {
    ok = verify('sha256', info.raw, createPublicKey({ key: spki.raw, format: 'der', type: 'spki' }), sig);
  } catch (err) {
    throw new CsrError(`CSR public key or signature unusable: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!ok) throw new CsrError('CSR signature does not verify with its own public key');
  return { spkiDer: Buffer.from(spki.raw), uris: attrs ? requestedUris(attrs) : [] };
}

/** URI SANs from the extensionRequest attribute ([0] IMPLICIT SET OF Attribute). */
function requestedUris(attrs: DerNode): string[] {
  const out: string[] = [];
  try {
    if (attrs.tag !== 0xa0) throw new CsrError('attributes are not [0]');
    for (const attr of children(attrs)) {
      const [oid, values] = children(attr);
      if (!oid || decodeOid(oid) !== OID.extensionRequest || !values) continue;
      for (const exts of children(values)) {
        for (const ext of children(exts)) {
          const parts = children(ext);
          if (decodeOid(parts[0] as DerNode) !== OID.subjectAltName) continue;
          const value = parts[parts.length - 1] as DerNode;
          for (const name of children(parseDer(value.content))) if (name.tag === 0x86) out.push(name.content.toString('ascii'));
        }
      }
    }
  } catch (err) {
    if (err instanceof CsrError) throw err;
    throw new CsrError(`malformed CSR extensions: ${err instanceof Error ? err.message : String(err)}`);
  }
  return out;
}
