import forge from 'node-forge';

/**
 * DER (X.690) for the PKCS#10 and X.509 structures ztunnel-ts builds and checks, on
 * node-forge's ASN.1 codec. forge's pki layer only knows RSA keys, so it cannot produce or
 * read ECDSA certificates; its asn1 layer is key-agnostic, and that is what we use for every
 * structure. Signatures come from node:crypto. This module keeps a Buffer-based API so the
 * signing code works on the exact bytes that are signed.
 */

const asn1 = forge.asn1;
// forge accepts an options object here; @types/node-forge only declares the older boolean form.
const fromDer = asn1.fromDer as unknown as (bytes: forge.util.ByteStringBuffer, options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean }) => forge.asn1.Asn1;

/** Universal tags (X.680) of the types the certificate structures use (full identifier octets). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Object identifiers used by the CSR, the CA and the certificates it issues. */
export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  extensionRequest: '1.2.840.113549.1.9.14',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Thrown for truncated, malformed or non-canonical DER; the caller adds which structure it was reading. */
export class DerError extends Error {
  constructor(what: string) {
    super(`malformed DER: ${what}`);
    this.name = 'DerError';
  }
}

const bin = (b: Buffer | Uint8Array): string => Buffer.from(b).toString('binary');
const encode = (o: forge.asn1.Asn1): Buffer => Buffer.from(asn1.toDer(o).getBytes(), 'binary');

function decode(buf: Buffer): forge.asn1.Asn1 {
  try {
    // strict + parseAllBytes: definite lengths only, nothing trailing. Bit strings stay raw so
    // re-encoding reproduces the input bytes.
    return fromDer(forge.util.createBuffer(bin(buf)), { strict: true, parseAllBytes: true, decodeBitStrings: false });
  } catch (err) {
    throw new DerError(err instanceof Error ? err.message : String(err));
  }
}

/** A primitive element with raw content bytes; `tag` is the full identifier octet. */
function primitive(tag: number, content: Buffer): Buffer {
  return encode(asn1.create(tag & 0xc0, tag & 0x1f, false, bin(content)));
}

/** A constructed element over already-encoded children (each one complete TLV). */
function constructed(tag: number, items: readonly Buffer[]): Buffer {
  return encode(asn1.create(tag & 0xc0, tag & 0x1f, true, items.map(decode)));
}

/** Encoders for the DER types we emit; each returns a complete TLV. */
export const der = {
  seq: (...items: Buffer[]): Buffer => constructed(TAG.SEQUENCE, items),
  set: (...items: Buffer[]): Buffer => constructed(TAG.SET, items),
  /** Context-specific constructed [n] (EXPLICIT tagging, or IMPLICIT of a constructed type). */
  explicit: (n: number, inner: Buffer): Buffer => constructed(0xa0 | n, [inner]),
  /** Context-specific primitive [n] (IMPLICIT of a primitive type, e.g. GeneralName URI [6]). */
  implicit: (n: number, content: Buffer): Buffer => primitive(0x80 | n, content),
  bool: (v: boolean): Buffer => primitive(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00])),
  null: (): Buffer => primitive(TAG.NULL, Buffer.alloc(0)),
  octets: (b: Buffer): Buffer => primitive(TAG.OCTET_STRING, b),
  /** BIT STRING with zero unused bits. */
  bits: (b: Buffer): Buffer => primitive(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b])),
  utf8: (s: string): Buffer => primitive(TAG.UTF8_STRING, Buffer.from(s, 'utf8')),
  ia5: (s: string): Buffer => primitive(TAG.IA5_STRING, Buffer.from(s, 'ascii')),
  /** A non-negative INTEGER from big-endian magnitude bytes (adds the sign byte when needed). */
  uint: (magnitude: Buffer): Buffer => {
    let i = 0;
    while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    return primitive(TAG.INTEGER, m.length > 0 && (m[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m.length ? m : Buffer.from([0]));
  },
  int: (n: number): Buffer => encode(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes())),
  oid: (dotted: string): Buffer => encode(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(dotted).getBytes())),
  /** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (whole seconds). */
  time: (ms: number): Buffer => {
    const d = new Date(Math.floor(ms / 1000) * 1000);
    return d.getUTCFullYear() < 2050
      ? encode(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d)))
      : encode(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d)));
  },
};

/** A decoded element; `raw` is the whole TLV, `content` its value bytes. */
export interface DerNode {
  readonly tag: number;
  readonly raw: Buffer;
  readonly content: Buffer;
  /** forge's parsed element, for walking children. */
  readonly node: forge.asn1.Asn1;
}

function wrap(node: forge.asn1.Asn1): DerNode {
  const raw = encode(node);
  const tag = node.tagClass | node.type | (node.constructed ? 0x20 : 0);
  const content = Array.isArray(node.value) ? Buffer.concat(node.value.map(encode)) : Buffer.from(node.value as string, 'binary');
  return { tag, raw, content, node };
}

/**
 * Parses a whole buffer as exactly one DER element. The input must be canonical DER: a
 * signature covers the exact bytes that were signed, and re-encoding is how raw element
 * bytes are recovered here, so anything that would not re-encode identically is refused.
 */
export function parseDer(buf: Buffer): DerNode {
  const n = wrap(decode(buf));
  if (!n.raw.equals(buf)) throw new DerError('not canonical DER');
  return n;
}

/** The elements inside a constructed node, in order. */
export function children(node: DerNode): DerNode[] {
  const v = node.node.value;
  if (!Array.isArray(v)) {
    // An IMPLICIT-tagged or OCTET STRING-wrapped structure arrives as raw bytes: parse them.
    const out: DerNode[] = [];
    for (let rest = node.content; rest.length > 0; ) {
      const first = firstElement(rest);
      out.push(first);
      rest = rest.subarray(first.raw.length);
    }
    return out;
  }
  return v.map(wrap);
}

/** The first complete element of `buf` (its length comes from the DER header). */
function firstElement(buf: Buffer): DerNode {
  if (buf.length < 2) throw new DerError('truncated header');
  let len = buf[1] as number;
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || 2 + n > buf.length) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[2 + i] as number);
    hdr += n;
  }
  if (hdr + len > buf.length) throw new DerError('element runs past the end');
  return parseDer(buf.subarray(0, hdr + len));
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node || node.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got ${node ? '0x' + node.tag.toString(16) : 'nothing'}`);
  return node;
}

export function decodeOid(node: DerNode): string {
  if (node.content.length === 0) throw new DerError('empty OID');
  return asn1.derToOid(bin(node.content));
}

/** BIT STRING contents without the unused-bits byte. */
export function bitStringBytes(node: DerNode): Buffer {
  if (node.tag !== TAG.BIT_STRING || node.content.length < 1) throw new DerError('expected BIT STRING');
  return node.content.subarray(1);
}
