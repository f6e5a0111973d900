import type * as net from 'node:net';
import { makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import { ProxyError } from '../errors';
import type { Capture } from './capture';
import { socketFd } from './socket-fd';

/** How the destination of an accepted connection was learned. */
export type OrigDstSource = 'so_original_dst' | 'local_address';

export interface ResolvedDestination {
  readonly addr: SocketAddr;
  readonly source: OrigDstSource;
}

/**
 * The destination the client meant, for a connection accepted on a capture listener.
 *
 * 1. With the addon: SO_ORIGINAL_DST (IPv4, also v4-mapped on a [::] listener), then
 *    IP6T_SO_ORIGINAL_DST: the address before the iptables REDIRECT.
 * 2. Otherwise, or when conntrack has no NAT entry (TPROXY delivers with the original
 *    destination as the local address; explicit/loopback listeners are addressed directly):
 *    the socket's local address, as ztunnel's orig_dst_addr falls back.
 *
 * A REDIRECTed connection without the addon therefore resolves to the capture port itself,
 * which the outbound path rejects as SELF_CALL: capture fails closed, it never bypasses.
 * Errors other than "no original destination" (EBADF on a closed socket) throw a ProxyError.
 */
export function resolveDestination(capture: Capture, socket: net.Socket): ResolvedDestination {
  if (capture.available) {
    let raw;
    try {
      raw = capture.addon.getOriginalDst(socketFd(socket));
    } catch (err) {
      throw new ProxyError('INTERNAL', `reading the original destination failed: ${err instanceof Error ? err.message : String(err)}`, {}, err);
    }
    if (raw) return { addr: makeSocketAddr(raw.ip, raw.port), source: 'so_original_dst' };
  }
  const ip = socket.localAddress;
  const port = socket.localPort;
  if (ip === undefined || port === undefined) throw new ProxyError('INTERNAL', 'accepted socket has no local address (already closed)');
  return { addr: makeSocketAddr(ip, port), source: 'local_address' };
}

/** {@link resolveDestination}'s address only: what the outbound listener routes on. */
export function originalDestination(capture: Capture, socket: net.Socket): SocketAddr {
  return resolveDestination(capture, socket).addr;
}
