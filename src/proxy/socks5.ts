import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { ProxyError, type Reason } from '../errors';
import { canonicalIp, ipBytes } from '../util/ip';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../util/socket-addr';

/**
 * SOCKS5 (RFC 1928) server side, the subset ztunnel serves: auth method 0x00 (none) and
 * CMD=CONNECT, with ATYP IPv4, IPv6 or a domain name. The handshake is parsed here; the
 * connection then goes through exactly the same outbound logic as captured traffic.
 */

export type SocksTarget = { readonly kind: 'ip'; readonly addr: SocketAddr } | { readonly kind: 'domain'; readonly host: string; readonly port: number };

/** RFC 1928 §6 reply codes. */
export const SOCKS_REPLY = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** A malformed or unsupported request; `reply` is the code to send before closing (null = send nothing). */
export class SocksError extends ProxyError {
  constructor(
    message: string,
    readonly reply: number | null,
  ) {
    super('SOCKS_PROTOCOL', message);
  }
}

/** Maps a failure reason to the reply code a SOCKS client should see. */
export function socksReplyFor(reason: Reason): number {
  switch (reason) {
    case 'DENY':
    case 'DENY_LATE':
      return SOCKS_REPLY.NOT_ALLOWED;
    case 'CONNECT':
    case 'HBONE_STATUS':
      return SOCKS_REPLY.CONNECTION_REFUSED;
    case 'CONNECT_TIMEOUT':
    case 'PEER_UNREACHABLE':
    case 'NETWORK_POLICY':
    case 'NO_HEALTHY_UPSTREAM':
    case 'UNKNOWN_DESTINATION':
    case 'SOCKS_UNKNOWN_HOST':
      return SOCKS_REPLY.HOST_UNREACHABLE;
    case 'SOCKS_PROTOCOL':
      return SOCKS_REPLY.COMMAND_NOT_SUPPORTED;
    default:
      return SOCKS_REPLY.GENERAL_FAILURE;
  }
}

/** Builds a reply: VER REP RSV ATYP BND.ADDR BND.PORT (bound address 0.0.0.0:0 unless given). */
export function buildSocksReply(code: number, bound?: SocketAddr): Buffer {
  const addr = bound ? ipBytes(bound.ip) : null;
  const v6 = addr !== null && addr.length === 16;
  const b = Buffer.alloc(v6 ? 22 : 10);
  b.set([5, code, 0, v6 ? 4 : 1]);
  if (addr) b.set(addr, 4);
  b.writeUInt16BE(bound?.port ?? 0, v6 ? 20 : 8);
  return b;
}

type Step<T> = { need: number } | { done: T; consumed: number };

const EMPTY = Buffer.alloc(0);
/** The two greeting replies; shared (a socket write never modifies the buffer it sends). */
const NO_AUTH = Buffer.from([5, 0]);
const NO_ACCEPTABLE_METHOD = Buffer.from([5, 0xff]);

/** Greeting: VER NMETHODS METHODS… → the reply the server sends. */
function parseGreeting(b: Buffer): Step<Buffer> {
  if (b.length < 2) return { need: 2 };
  if (b[0] !== 5) throw new SocksError(`unsupported SOCKS version ${b[0]} (only 5)`, null);
  const n = b[1] as number;
  if (n === 0) throw new SocksError('SOCKS greeting lists no auth methods', null);
  if (b.length < 2 + n) return { need: 2 + n };
  const methods = b.subarray(2, 2 + n);
  return { done: methods.includes(0) ? NO_AUTH : NO_ACCEPTABLE_METHOD, consumed: 2 + n };
}

/** Request: VER CMD RSV ATYP DST.ADDR DST.PORT. */
function parseRequest(b: Buffer): Step<SocksTarget> {
  if (b.length < 5) return { need: 5 };
  if (b[0] !== 5) throw new SocksError(`bad SOCKS request version ${b[0]}`, SOCKS_REPLY.GENERAL_FAILURE);
  if (b[1] !== 1) throw new SocksError(`SOCKS command ${b[1]} not supported (only CONNECT)`, SOCKS_REPLY.COMMAND_NOT_SUPPORTED);
  const atyp = b[3];
  if (atyp === 1) {
    if (b.length < 10) return { need: 10 };
    const ip = `${b[4]}.${b[5]}.${b[6]}.${b[7]}`;
    return { done: { kind: 'ip', addr: makeSocketAddr(ip, b.readUInt16BE(8)) }, consumed: 10 };
  }
  if (atyp === 4) {
    if (b.length < 22) return { need: 22 };
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(4 + i * 2).toString(16));
    return { done: { kind: 'ip', addr: makeSocketAddr(canonicalIp(groups.join(':')) ?? groups.join(':'), b.readUInt16BE(20)) }, consumed: 22 };
  }
  if (atyp === 3) {
    const len = b[4] as number;
    if (len === 0) throw new SocksError('SOCKS domain name is empty', SOCKS_REPLY.GENERAL_FAILURE);
    if (b.length < 5 + len + 2) return { need: 5 + len + 2 };
    const host = b.subarray(5, 5 + len).toString('latin1');
    if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new SocksError(`SOCKS domain name ${JSON.stringify(host)} is not a host name`, SOCKS_REPLY.GENERAL_FAILURE);
    const port = b.readUInt16BE(5 + len);
    if (isIP(host)) return { done: { kind: 'ip', addr: makeSocketAddr(host, port) }, consumed: 7 + len };
    return { done: { kind: 'domain', host: host.toLowerCase().replace(/\.$/, ''), port }, consumed: 7 + len };
  }
  throw new SocksError(`SOCKS address type ${atyp} not supported`, SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED);
}

/** A handshake longer than this (either step, methods or a domain name included) is refused. */
const MAX_STEP_BYTES = 600;

/**
 * Runs the greeting and reads the CONNECT request. On success the socket is paused with
 * any pipelined payload unshifted; the caller replies with buildSocksReply once the
 * upstream is open (success only after the upstream connected, RFC 1928 §6).
 * Throws SocksError (reason SOCKS_PROTOCOL) carrying the reply code to send.
 */
export async function readSocksRequest(socket: Socket, timeoutMs: number): Promise<SocksTarget> {
  return (await readSocksHandshake(socket, timeoutMs)).target;
}

/**
 * As readSocksRequest, also returning how many bytes the handshake consumed (not app bytes).
 * Both steps run on one set of listeners and one deadline (handshake only, not the data
 * path): a promise, a timer and three listeners per step showed up per connection in
 * connection-rate profiles.
 */
export function readSocksHandshake(socket: Socket, timeoutMs: number): Promise<{ target: SocksTarget; consumed: number }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = EMPTY;
    let greeted = false;
    const stop = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
    };
    const fail = (err: unknown): void => {
      stop();
      reject(err);
    };
    const timer = setTimeout(() => fail(new SocksError(`SOCKS handshake not completed within ${timeoutMs}ms`, null)), timeoutMs);
    /** Parses what is buffered as far as it goes (throws SocksError for a bad handshake). */
    const advance = (): void => {
      if (!greeted) {
        const g = parseGreeting(buf);
        if (!('done' in g)) return checkLength();
        socket.write(g.done);
        if (g.done[1] === 0xff) throw new SocksError('SOCKS client offers no supported auth method (only 0x00 no-auth)', null);
        greeted = true;
        buf = buf.subarray(g.consumed);
      }
      const r = parseRequest(buf);
      if (!('done' in r)) return checkLength();
      stop();
      const rest = buf.subarray(r.consumed);
      if (rest.length) socket.unshift(rest);
      resolve({ target: r.done, consumed: (socket.bytesRead ?? 0) - rest.length });
    };
    const checkLength = (): void => {
      if (buf.length > MAX_STEP_BYTES) throw new SocksError('SOCKS handshake too long', null);
    };
    const onData = (c: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      try {
        advance();
      } catch (err) {
        fail(err);
      }
    };
    const onEnd = (): void => fail(new SocksError(`client closed during the SOCKS handshake after ${buf.length} bytes`, null));
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

export function describeSocksTarget(t: SocksTarget): string {
  return t.kind === 'ip' ? formatSocketAddr(t.addr) : `${t.host}:${t.port}`;
}
