import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { der, OID, TAG, bitStringBytes, children, parseDer } from './der';

/**
 * The one place that builds PKCS#10 requests and X.509 certificates (RFC 2986, RFC 5280).
 * The CSR path (workload keys) and the dev CA (root, serving and leaf certificates) share
 * it, so both sides agree byte for byte on how a SPIFFE SAN or a key id is encoded.
 * Every structure is signed ECDSA P-256 / SHA-256 with node:crypto.
 */

export type GeneralName = { readonly uri: string } | { readonly dns: string } | { readonly ip: Uint8Array };

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER that goes inside the extnValue OCTET STRING. */
  readonly value: Buffer;
}

export type KeyUsageBit = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';
const KEY_USAGE_BIT: Record<KeyUsageBit, number> = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 };

function generalName(n: GeneralName): Buffer {
  if ('uri' in n) return der.implicit(6, Buffer.from(n.uri, 'ascii'));
  if ('dns' in n) return der.implicit(2, Buffer.from(n.dns, 'ascii'));
  return der.implicit(7, Buffer.from(n.ip));
}

/** SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1). */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const spki = parseDer(spkiDer);
  const bits = children(spki)[1];
  if (!bits || bits.tag !== TAG.BIT_STRING) throw new Error('SubjectPublicKeyInfo without a BIT STRING key');
  return createHash('sha1').update(bitStringBytes(bits)).digest();
}

export const extension = {
  /**
   * RFC 5280 §4.2.1.6: with an empty subject the SAN extension MUST be critical (strict
   * external CAs such as AWS Private CA reject the certificate otherwise).
   */
  subjectAltName: (names: readonly GeneralName[], critical: boolean): Extension => ({ oid: OID.subjectAltName, critical, value: der.seq(...names.map(generalName)) }),
  basicConstraints: (ca: boolean): Extension => ({ oid: OID.basicConstraints, critical: true, value: ca ? der.seq(der.bool(true)) : der.seq() }),
  keyUsage: (bits: readonly KeyUsageBit[]): Extension => {
    let v = 0;
    for (const b of bits) v |= 0x80 >> KEY_USAGE_BIT[b];
    let unused = 0;
    while (unused < 7 && !((v >> unused) & 1)) unused++;
    return { oid: OID.keyUsage, critical: true, value: Buffer.concat([Buffer.from([TAG.BIT_STRING, 2, unused, v])]) };
  },
  extKeyUsage: (oids: readonly string[]): Extension => ({ oid: OID.extKeyUsage, critical: false, value: der.seq(...oids.map(der.oid)) }),
  subjectKeyId: (spkiDer: Buffer): Extension => ({ oid: OID.subjectKeyIdentifier, critical: false, value: der.octets(keyIdentifier(spkiDer)) }),
  authorityKeyId: (issuerKeyId: Buffer): Extension => ({ oid: OID.authorityKeyIdentifier, critical: false, value: der.seq(der.implicit(0, issuerKeyId)) }),
};

function encodeExtension(e: Extension): Buffer {
  return e.critical ? der.seq(der.oid(e.oid), der.bool(true), der.octets(e.value)) : der.seq(der.oid(e.oid), der.octets(e.value));
}

/** An X.501 Name; `{}` gives the empty RDNSequence workload certificates use. */
export function buildName(attrs: { cn?: string; o?: string }): Buffer {
  const rdns: Buffer[] = [];
  if (attrs.o !== undefined) rdns.push(der.set(der.seq(der.oid(OID.organization), der.utf8(attrs.o))));
  if (attrs.cn !== undefined) rdns.push(der.set(der.seq(der.oid(OID.commonName), der.utf8(attrs.cn))));
  return der.seq(...rdns);
}

const ECDSA_SHA256 = der.seq(der.oid(OID.ecdsaWithSha256));

/** `SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }`: a signed CSR or certificate. */
export function signStructure(tbs: Buffer, key: KeyObject | string): Buffer {
  return der.seq(tbs, ECDSA_SHA256, der.bits(sign('sha256', tbs, key)));
}

/**
 * A PKCS#10 request with an empty subject and exactly one critical URI SAN (ztunnel's
 * CSR shape, ZT src/tls/csr.rs), signed by `key`.
 */
export function buildCsrDer(spkiDer: Buffer, uri: string, key: KeyObject | string): Buffer {
  const san = encodeExtension(extension.subjectAltName([{ uri }], true));
  const attributes = der.explicit(0, der.seq(der.oid(OID.extensionRequest), der.set(der.seq(san))));
  const info = der.seq(der.int(0), buildName({}), spkiDer, attributes);
  return signStructure(info, key);
}

export interface CertificateFields {
  readonly serial: Buffer;
  /** The issuer's subject Name DER, exactly as in the issuer certificate. */
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spkiDer: Buffer;
  readonly extensions: readonly Extension[];
}

/** A v3 certificate signed by the issuer key. */
export function buildCertificateDer(f: CertificateFields, issuerKey: KeyObject | string): Buffer {
  const tbs = der.seq(
    der.explicit(0, der.int(2)),
    der.uint(f.serial),
    ECDSA_SHA256,
    f.issuerName,
    der.seq(der.time(f.notBefore), der.time(f.notAfter)),
    f.subjectName,
    f.spkiDer,
    der.explicit(3, der.seq(...f.extensions.map(encodeExtension))),
  );
  return signStructure(tbs, issuerKey);
}

/** A random positive 128-bit serial (RFC 5280 allows up to 20 octets). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b;
}
