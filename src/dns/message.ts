/**
 * DNS messages in and out of the proxy, through dns-packet (no hand-written parser): what a
 * query is allowed to be, and the responses the proxy builds itself (answers, errors,
 * truncation for UDP clients). Forwarded responses are never re-encoded: their bytes are
 * relayed as the upstream sent them.
 */
import * as packet from 'dns-packet';
import type { MeshRecord } from './answer';

/** Queries longer than this are refused with FORMERR: real ones are tens of bytes (no memory for junk). */
export const MAX_QUERY_BYTES = 4096;
/** A UDP client without EDNS accepts this much (RFC 1035). */
export const CLASSIC_UDP_BYTES = 512;
/** The largest UDP answer we send whatever the client advertises (avoids IP fragmentation beyond this). */
export const MAX_UDP_BYTES = 4096;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = (typeof RCODE)[keyof typeof RCODE];

export interface Query {
  readonly id: number;
  readonly name: string;
  /** A, AAAA, …; unknown types as dns-packet names them (e.g. UNKNOWN_65280). */
  readonly type: string;
  readonly class: string;
  /** The client's EDNS UDP payload size, or 512 without EDNS (capped at MAX_UDP_BYTES). */
  readonly maxUdp: number;
  readonly packet: packet.DecodedPacket;
}

export type ParsedQuery =
  | { readonly ok: true; readonly query: Query }
  /** reply: what to send back (FORMERR / NOTIMP with the client's id), or null to drop (not even a header). */
  | { readonly ok: false; readonly reply: Buffer | null; readonly why: string };

/**
 * Decodes a query and checks it is one we answer: a standard QUERY with exactly one question.
 * Anything else gets FORMERR (or NOTIMP for another opcode); fewer than 12 bytes cannot
 * even be answered, so they are dropped. Never throws.
 */
export function parseQuery(buf: Buffer): ParsedQuery {
  if (buf.length < 12) return { ok: false, reply: null, why: `message of ${buf.length} bytes is shorter than a DNS header` };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const opcode = (flags >> 11) & 0xf;
  if (buf.length > MAX_QUERY_BYTES) return { ok: false, reply: headerOnly(id, opcode, RCODE.FORMERR), why: `query of ${buf.length} bytes exceeds ${MAX_QUERY_BYTES}` };
  if (flags & 0x8000) return { ok: false, reply: headerOnly(id, opcode, RCODE.FORMERR), why: 'a response was sent as a query' };
  if (opcode !== 0) return { ok: false, reply: headerOnly(id, opcode, RCODE.NOTIMP), why: `opcode ${opcode} is not QUERY` };
  let p: packet.DecodedPacket;
  try {
    p = packet.decode(buf);
  } catch (err) {
    return { ok: false, reply: headerOnly(id, opcode, RCODE.FORMERR), why: `undecodable: ${(err as Error).message}` };
  }
  const q = p.questions;
  if (!q || q.length !== 1 || !q[0]) return { ok: false, reply: headerOnly(id, opcode, RCODE.FORMERR), why: `${q?.length ?? 0} questions (exactly one is allowed)` };
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const maxUdp = opt?.udpPayloadSize ? Math.min(MAX_UDP_BYTES, Math.max(CLASSIC_UDP_BYTES, opt.udpPayloadSize)) : CLASSIC_UDP_BYTES;
  return { ok: true, query: { id, name: q[0].name, type: String(q[0].type), class: String(q[0].class), maxUdp, packet: p } };
}

/** A response with no sections (the question could not be read): id, QR, opcode, rcode. */
function headerOnly(id: number, opcode: number, rcode: Rcode): Buffer {
  return packet.encode({ id, type: 'response', flags: (opcode << 11) | rcode, questions: [], answers: [] });
}

/** The flags of a response to `q`: RD echoed, RA set (we resolve recursively through the upstreams). */
function responseFlags(q: Query, rcode: Rcode, authoritative: boolean): number {
  return (q.packet.flag_rd ? packet.RECURSION_DESIRED : 0) | packet.RECURSION_AVAILABLE | (authoritative ? packet.AUTHORITATIVE_ANSWER : 0) | rcode;
}

/** EDNS is answered with EDNS (our payload size), as a resolver must when the client used it. */
function ednsOf(q: Query): packet.Answer[] {
  return q.maxUdp > CLASSIC_UDP_BYTES || (q.packet.additionals ?? []).some((a) => a.type === 'OPT') ? [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_BYTES, flags: 0 } as packet.Answer] : [];
}

/** An authoritative answer from the mesh state (possibly empty: the name exists). */
export function meshAnswer(q: Query, records: readonly MeshRecord[]): Buffer {
  return packet.encode({
    id: q.id,
    type: 'response',
    flags: responseFlags(q, RCODE.NOERROR, true),
    questions: q.packet.questions,
    answers: records as packet.Answer[],
    additionals: ednsOf(q),
  });
}

/** An error response that keeps the question (SERVFAIL when forwarding failed, …). */
export function errorResponse(q: Query, rcode: Rcode): Buffer {
  return packet.encode({ id: q.id, type: 'response', flags: responseFlags(q, rcode, false), questions: q.packet.questions, answers: [], additionals: ednsOf(q) });
}

/**
 * What a UDP client gets: the message itself when it fits the client's size, else the same
 * header with TC set and only the question, so the client retries over TCP (where it gets
 * everything). Upstream responses are relayed unchanged whenever they fit.
 */
export function fitForUdp(q: Query, response: Buffer): Buffer {
  if (response.length <= q.maxUdp) return response;
  const flags = response.length >= 4 ? response.readUInt16BE(2) & 0x7fff : responseFlags(q, RCODE.SERVFAIL, false);
  return packet.encode({ id: q.id, type: 'response', flags: flags | packet.TRUNCATED_RESPONSE, questions: q.packet.questions, answers: [], additionals: ednsOf(q) });
}

/** The response's id, TC bit and rcode, read without decoding the whole message (upstream replies). */
export function responseHeader(buf: Buffer): { id: number; isResponse: boolean; truncated: boolean; rcode: number } | null {
  if (buf.length < 12) return null;
  const flags = buf.readUInt16BE(2);
  return { id: buf.readUInt16BE(0), isResponse: (flags & 0x8000) !== 0, truncated: (flags & packet.TRUNCATED_RESPONSE) !== 0, rcode: flags & 0xf };
}

/** The number of answers in a response (for the query log), from its header. */
export function answerCount(buf: Buffer): number {
  return buf.length >= 12 ? buf.readUInt16BE(6) : 0;
}
