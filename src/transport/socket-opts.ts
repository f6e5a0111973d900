import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';

/** What a dial's descriptor needs before bind and connect. */
export interface DialSocketSpec {
  /** SO_MARK; 0 = none. */
  readonly mark: number;
  /** Source address to bind (without reserving a port), or null for the kernel's choice. */
  readonly bindIp: string | null;
  /** IP_TRANSPARENT + IP_FREEBIND: `bindIp` may be a non-local address (original source). */
  readonly transparent: boolean;
}

/**
 * Per-socket options for proxied TCP legs and HBONE connections.
 *
 * Listener owners: create servers and sockets with `allowHalfOpen: true`, otherwise Node
 * ends our write side as soon as the peer's FIN arrives and splice() cannot carry a
 * half-close. For 15008, `pauseOnConnect: true` is preferred so no TLS bytes are pulled
 * into JS before HboneServer wraps the socket (buffered bytes are replayed by Node anyway).
 */
export interface SocketOptions {
  /** TCP_NODELAY: proxies must not add Nagle delay on top of the app's own writes. */
  readonly noDelay: boolean;
  /** SO_KEEPALIVE on (KEEPALIVE_ENABLED). */
  readonly keepalive: boolean;
  /** Keepalive idle time in ms (KEEPALIVE_TIME). */
  readonly keepaliveTime: number;
  /** SO_MARK value (PACKET_MARK) so capture rules skip proxy traffic; needs `createSocket`. */
  readonly mark?: number;
  /**
   * Creates a dial's descriptor with its options set (the native addon's createDialSocket).
   * Injected rather than imported so this module builds and runs where the addon is absent:
   * then dials bind through Node and carry no mark.
   */
  readonly createSocket?: (family: 4 | 6, spec: DialSocketSpec) => number;
}

export const DEFAULT_SOCKET_OPTIONS: SocketOptions = { noDelay: true, keepalive: true, keepaliveTime: 180_000 };

/** The per-connection TCP options (the rest of SocketOptions is about making the descriptor). */
export type TcpTuning = Pick<SocketOptions, 'noDelay' | 'keepalive' | 'keepaliveTime'>;

/**
 * TCP_NODELAY and SO_KEEPALIVE on one proxied socket, as ztunnel sets them on every socket
 * it dials and on the sockets its capture listeners (15001, 15006) accept: a proxy must not
 * add Nagle delay, and keepalive finds a peer that vanished without a FIN on a connection
 * that may sit idle for hours. Applied once per socket, at dial or accept.
 */
export function applySocketOptions(socket: Socket, o: TcpTuning): void {
  socket.setNoDelay(o.noDelay);
  if (o.keepalive) socket.setKeepAlive(true, o.keepaliveTime);
}

/** Node's TCP handle (TCPWrap; a TLSWrap forwards `open` to the TCP handle it wraps). */
interface AdoptingHandle {
  open(fd: number): number;
}

/**
 * Prepares a socket we are about to dial (net.connect or tls.connect): call it, pass the
 * returned `localAddress` to connect, then call `attach` synchronously right after.
 *
 * SO_MARK and IP_TRANSPARENT must be on the descriptor before the SYN (IP_TRANSPARENT even
 * before bind), and a `localAddress` given to Node makes it bind(ip:0), which reserves a
 * local port for every destination: under churn such binds fail with EADDRINUSE long
 * before the ephemeral range is used up. So when the addon is there and anything beyond
 * the defaults is needed, Node gets no local address; `attach` has the addon create a
 * descriptor with the options set and a port-less bind, and the socket's handle adopts it
 * before Node's connect runs (connect to an IP literal happens on the next tick), so the
 * kernel picks the source port at connect time for the full 4-tuple.
 *
 * A mark the kernel refuses (EPERM: no CAP_NET_ADMIN) is reported to `onError` and the
 * dial proceeds unmarked; any other failure destroys the socket with the error before it
 * connects, which the dialler reports as a failed connect.
 */
export function prepareDial(
  socketFamily: 4 | 6,
  localAddress: string | undefined,
  opts: SocketOptions,
  transparent = false,
): { localAddress: string | undefined; attach: (socket: Socket, onError: (err: Error) => void) => void } {
  const create = opts.createSocket;
  const mark = opts.mark ?? 0;
  const native = create !== undefined && (mark !== 0 || localAddress !== undefined || transparent);
  return {
    localAddress: native ? undefined : localAddress,
    attach: (socket, onError) => {
      applySocketOptions(socket, opts);
      if (!native) return;
      try {
        adopt(socket, createWithMarkFallback(create, socketFamily, { mark, bindIp: localAddress ?? null, transparent }, onError));
      } catch (err) {
        // Destroyed before the next tick: Node's pending connect sees it and never runs.
        socket.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    },
  };
}

function createWithMarkFallback(create: NonNullable<SocketOptions['createSocket']>, family: 4 | 6, spec: DialSocketSpec, onError: (err: Error) => void): number {
  try {
    return create(family, spec);
  } catch (err) {
    if (spec.mark === 0 || (err as NodeJS.ErrnoException).syscall !== 'setsockopt(SO_MARK)') throw err;
    onError(err as Error);
    return create(family, { ...spec, mark: 0 });
  }
}

/** Hands the prepared descriptor to the socket's handle, which then connects it. */
function adopt(socket: Socket, fd: number): void {
  const handle = (socket as unknown as { _handle?: AdoptingHandle | null })._handle;
  const rc = handle ? handle.open(fd) : -1;
  if (rc !== 0) {
    closeSync(fd);
    throw new Error(`adopting the prepared socket descriptor failed (${handle ? `uv error ${rc}` : 'socket has no handle'})`);
  }
}

/**
 * A duplicate of a connected socket's descriptor (`dupFd`: F_DUPFD_CLOEXEC from the addon),
 * so the connection can live on in another socket object or thread once the caller closes
 * this one's handle; null when the socket has no descriptor. Throws the duplication's error.
 */
export function duplicateSocketFd(socket: Socket, dupFd: (fd: number) => number): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return fd === undefined || fd < 0 ? null : dupFd(fd);
}
