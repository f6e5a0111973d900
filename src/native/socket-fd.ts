import type * as net from 'node:net';
import { ProxyError } from '../errors';

/** The parts of Node's internal handle we read. */
interface HandleLike {
  readonly fd?: number;
  /** TLSWrap: the TCP handle it wraps. */
  readonly _parent?: HandleLike | null;
}
interface SocketInternals {
  readonly _handle?: HandleLike | null;
  /** tls.TLSSocket: the net.Socket it wraps (client side and server side). */
  readonly _parent?: SocketInternals | null;
}

/**
 * The kernel descriptor behind a Node socket.
 *
 * WHY `_handle.fd`: Node has no public API for a socket's descriptor, yet SO_ORIGINAL_DST,
 * SO_MARK and IP_TRANSPARENT are options on exactly that descriptor. On Unix every TCP handle
 * (libuv `uv_tcp_t`, Node's `TCPWrap`) exposes the read-only `fd` getter (uv_fileno), which
 * Node itself uses for `net.Socket({ fd })` round-trips and which has been stable since Node
 * 0.x. It is -1 before connect/accept created the descriptor, after close, and on Windows.
 * A TLS socket's own handle is a TLSWrap without a descriptor, so we look at the TCP handle
 * it wraps (`_handle._parent`) or the wrapped net.Socket (`_parent`). We only ever READ the
 * descriptor and set options on it: the socket's single owner stays the Node object, which
 * alone closes it.
 */
export function socketFd(socket: net.Socket): number {
  const fd = findFd(socket);
  if (fd >= 0) return fd;
  throw new ProxyError('INTERNAL', 'socket has no file descriptor (closed, not yet connected, or not a TCP socket)');
}

/** The descriptor, or -1 when there is none yet (a connect still scheduled) or any more. */
export function findFd(socket: net.Socket): number {
  const s = socket as unknown as SocketInternals;
  for (let cur: SocketInternals | null | undefined = s, depth = 0; cur && depth < 3; cur = cur._parent, depth++) {
    for (const h of [cur._handle, cur._handle?._parent]) {
      const fd = h?.fd;
      if (typeof fd === 'number' && fd >= 0) return fd;
    }
  }
  return -1;
}
