import { randomBytes, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { SpiffeId } from '../identity/spiffe';
import type { Workload } from '../state/types';
import type { SocketAddr } from '../util/socket-addr';
import type { L7Target } from './l7/decide';

/** What the waypoint knows about one accepted HBONE tunnel, shared by its requests. */
export interface ConnInfo {
  /** From the verified client certificate (the client workload's identity). */
  readonly peerIdentity: SpiffeId;
  readonly peerAddr: SocketAddr;
  /** The original client (HBONE `forwarded: for=`), else the peer IP. */
  readonly remoteIp: string;
  /** The CONNECT authority: what the client dialled. */
  readonly dst: SocketAddr;
  readonly target: L7Target;
  /** The client workload, only when its identity matches the certificate. */
  readonly srcWorkload: Workload | null;
  /** The CONNECT's `traceparent` (the client node proxy's, per tunnel): linked from request spans. */
  readonly tunnelTraceparent?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * W3C trace context: a valid incoming `traceparent` is continued (same trace id and
 * flags, a new span id for this hop); otherwise a new sampled trace starts.
 */
export function nextTraceparent(incoming: string | undefined): string {
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  const span = randomBytes(8).toString('hex');
  if (m && !/^0+$/.test(m[1] as string) && !/^0+$/.test(m[2] as string)) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomBytes(16).toString('hex')}-${span}-01`;
}

/** The request's `x-request-id`, generated when absent. */
export function requestId(incoming: string | undefined): string {
  return incoming && incoming.length > 0 && incoming.length <= 256 ? incoming : randomUUID();
}

/**
 * The address of `for=` in an RFC 7239 Forwarded header (its first element), without the
 * port, or null. The node proxy sends `for="ip:port"` (IPv6 as `"[ip]:port"`); a port left
 * on the address would make every remoteIpBlocks check and the source-IP hash miss.
 */
export function forwardedFor(h: string | string[] | undefined): string | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return null;
  const m = /(?:^|[;,\s])for=("[^"]*"|[^;,\s]*)/i.exec(v);
  if (!m) return null;
  let node = (m[1] as string).replace(/^"|"$/g, '');
  if (node.startsWith('[')) node = node.slice(1, node.indexOf(']') > 0 ? node.indexOf(']') : undefined);
  else if (isIP(node) === 0 && node.indexOf(':') === node.lastIndexOf(':')) node = node.split(':')[0] as string;
  return isIP(node) !== 0 ? node : null;
}
