/**
 * Minimal DER (X.690) writer and reader for the PKCS#10 and X.509 structures ztunnel-ts
 * builds and checks. node-forge cannot sign or parse ECDSA, and Node has no ASN.1 API, so
 * the few structures we need are encoded here by hand; signatures come from node:crypto.
 * The reader keeps the raw bytes of every element, because a signature covers the exact
 * bytes that were signed (re-encoding a parsed tree could differ).
 */

/** Universal tags (X.680) of the types the certificate structures use. */
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

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV element. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content]);
}

/** Encoders for the DER types we emit; each returns a complete TLV. */
export const der = {
  seq: (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat(items)),
  /** Context-specific constructed [n] (EXPLICIT tagging, or IMPLICIT of a constructed type). */
  explicit: (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner),
  /** Context-specific primitive [n] (IMPLICIT of a primitive type, e.g. GeneralName URI [6]). */
  implicit: (n: number, content: Buffer): Buffer => tlv(0x80 | n, content),
  bool: (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00])),
  null: (): Buffer => tlv(TAG.NULL, Buffer.alloc(0)),
  octets: (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b),
  /** BIT STRING with zero unused bits. */
  bits: (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b])),
  utf8: (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8')),
  ia5: (s: string): Buffer => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii')),
  /** A non-negative INTEGER from big-endian magnitude bytes (adds the sign byte when needed). */
  uint: (magnitude: Buffer): Buffer => {
    let i = 0;
    while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    return tlv(TAG.INTEGER, m.length > 0 && (m[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m.length ? m : Buffer.from([0]));
  },
  int: (n: number): Buffer => {
    const h = n.toString(16);
    return der.uint(Buffer.from(h.length % 2 ? '0' + h : h, 'hex'));
  },
  oid: (dotted: string): Buffer => tlv(TAG.OID, encodeOid(dotted)),
  /** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
  time: (ms: number): Buffer => {
    const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // 2026-11-22T03:56:40.000Z
    const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z'; // 20261122035640Z
    const year = new Date(ms).getUTCFullYear();
    return year < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(digits.slice(2), 'ascii')) : tlv(TAG.GENERALIZED_TIME, Buffer.from(digits, 'ascii'));
  },
};

function encodeOid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return Buffer.from(out);
}

/** A decoded element; `raw` is the whole TLV, `content` its value bytes. */
export interface DerNode {
  readonly tag: number;
  readonly raw: Buffer;
  readonly content: Buffer;
}

/** Thrown for truncated or malformed DER; the caller adds which structure it was reading. */
export class DerError extends Error {
  constructor(what: string) {
    super(`malformed DER: ${what}`);
    this.name = 'DerError';
  }
}

/** Reads the element at `offset`; definite lengths only (DER). */
export function readNode(buf: Buffer, offset = 0): DerNode {
  if (offset + 2 > buf.length) throw new DerError('truncated header');
  const tag = buf[offset] as number;
  let len = buf[offset + 1] as number;
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || offset + 2 + n > buf.length) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] as number);
    hdr += n;
  }
  const end = offset + hdr + len;
  if (end > buf.length) throw new DerError('element runs past the end');
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + hdr, end) };
}

/** The elements inside a constructed node, in order. */
export function children(node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  for (let off = 0; off < node.content.length; ) {
    const c = readNode(node.content, off);
    out.push(c);
    off += c.raw.length;
    if (out.length > 10_000) throw new DerError('too many elements');
  }
  return out;
}

/** Parses a whole buffer as exactly one element. */
export function parseDer(buf: Buffer): DerNode {
  const n = readNode(buf, 0);
  if (n.raw.length !== buf.length) throw new DerError('trailing bytes');
  return n;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node || node.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got ${node ? '0x' + node.tag.toString(16) : 'nothing'}`);
  return node;
}

export function decodeOid(node: DerNode): string {
  const b = node.content;
  if (b.length === 0) throw new DerError('empty OID');
  const first = b[0] as number;
  const parts = [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40))];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + ((b[i] as number) & 0x7f);
    if (!((b[i] as number) & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

/** BIT STRING contents without the unused-bits byte. */
export function bitStringBytes(node: DerNode): Buffer {
  if (node.tag !== TAG.BIT_STRING || node.content.length < 1) throw new DerError('expected BIT STRING');
  return node.content.subarray(1);
}
