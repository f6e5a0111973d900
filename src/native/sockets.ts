import * as fs from 'node:fs';
import * as net from 'node:net';
import type { CaptureAvailable } from './capture';
import { findFd } from './socket-fd';

/** Options for a proxy-originated TCP connection inside a captured network namespace. */
export interface MarkedConnectOptions {
  readonly host: string;
  readonly port: number;
  /** SO_MARK; the capture rules skip packets carrying it (PACKET_MARK, 0x539 by default). 0 = none. */
  readonly mark: number;
  /** Bind to this source first (with `transparent`, a non-local address: source spoofing). */
  readonly localAddress?: string;
  /** IP_TRANSPARENT + IP_FREEBIND before bind(), for spoofing the original client address. */
  readonly transparent?: boolean;
  readonly allowHalfOpen?: boolean;
  readonly noDelay?: boolean;
  /** TCP keepalive initial delay in ms; undefined = keepalive off. */
  readonly keepAliveMs?: number;
}

/**
 * Opens a TCP connection whose socket carries SO_MARK (and optionally IP_TRANSPARENT) from
 * its first packet on.
 *
 * WHY not `net.connect` + setsockopt: net.connect creates the descriptor and sends the SYN in
 * the same tick, so a mark set afterwards misses the packet that the nat table matches, and
 * the proxy's own connection to a peer's :15008 (or to the local app) would be REDIRECTed
 * back to :15001 (a loop). Instead the addon creates the socket, we set the options, and
 * Node adopts the descriptor (`new net.Socket({ fd })`); its connect() then reuses it
 * (libuv keeps an existing descriptor). `manualStart` stops Node from reading the not yet
 * connected socket; reading starts on 'connect' as for any client socket.
 *
 * The returned socket behaves exactly like net.connect's: 'connect', 'error', bytesRead and
 * bytesWritten, and the caller owns it. Errors from setsockopt (EPERM without
 * CAP_NET_ADMIN) are thrown synchronously, after the descriptor is closed.
 */
export function connectMarked(capture: CaptureAvailable, opts: MarkedConnectOptions): net.Socket {
  const family = net.isIP(opts.host);
  if (family !== 4 && family !== 6) throw new TypeError(`connectMarked: host must be an IP literal, got ${JSON.stringify(opts.host)}`);
  const fd = capture.addon.createTcpSocket(family);
  let socket: net.Socket;
  try {
    if (opts.mark !== 0) capture.addon.setMark(fd, opts.mark);
    if (opts.transparent) {
      capture.addon.setTransparent(fd, true);
      capture.addon.setFreebind(fd);
    }
    socket = new net.Socket({ fd, allowHalfOpen: opts.allowHalfOpen ?? false, manualStart: true } as net.SocketConstructorOpts);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  if (opts.noDelay) socket.setNoDelay(true);
  if (opts.keepAliveMs !== undefined) socket.setKeepAlive(true, opts.keepAliveMs);
  socket.connect({ host: opts.host, port: opts.port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
  return socket;
}

/** Options for a capture listener created through the addon. */
export interface NativeListenOptions {
  readonly host: string;
  readonly port: number;
  readonly backlog?: number;
  /** SO_REUSEPORT, so an old and a new proxy can hold the port during a restart (ztunnel INPOD_PORT_REUSE). */
  readonly reusePort?: boolean;
  /** IP_TRANSPARENT: accept TPROXY-delivered connections for non-local destinations. */
  readonly transparent?: boolean;
  readonly mark?: number;
}

/**
 * A listening socket with options Node 20 cannot set before bind() (SO_REUSEPORT,
 * IP_TRANSPARENT), adopted by `server.listen({ fd })`. Resolves once Node listens; rejects
 * with the errno-coded error (EADDRINUSE, EPERM, …) otherwise. `[::]` is dual-stack.
 */
export function listenNative(capture: CaptureAvailable, server: net.Server, opts: NativeListenOptions): Promise<void> {
  const family = net.isIP(opts.host);
  if (family !== 4 && family !== 6) return Promise.reject(new TypeError(`listenNative: host must be an IP literal, got ${JSON.stringify(opts.host)}`));
  let fd: number;
  try {
    fd = capture.addon.createTcpListener(family, opts.host, opts.port, opts.backlog ?? 511, opts.reusePort ?? false, opts.transparent ?? false, opts.mark ?? 0);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      fs.closeSync(fd);
      reject(err);
    };
    server.once('error', onError);
    server.listen({ fd }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** The TCP handle methods used to adopt a descriptor (TCPWrap; TLSWrap proxies them to its TCP handle). */
interface AdoptableHandle {
  readonly fd?: number;
  open(fd: number): number;
}

/**
 * Marks a socket returned by `net.connect()` / `tls.connect()` BEFORE its first packet, when
 * called synchronously right after that call (the connect itself runs on the next tick, or
 * after the DNS lookup for a host name).
 *
 * WHY: Node creates the descriptor inside the same call that sends the SYN, so setting SO_MARK
 * through the descriptor afterwards is too late for the nat rules (a loop into :15001). Node
 * 20.12+ emits 'connectionAttempt' just before that call, with the address family; there we
 * either mark the descriptor a localAddress bind already created, or create a marked
 * descriptor and hand it to the handle (`open(fd)`), which libuv then connects instead of
 * creating its own. Throws when the socket is already connected (the caller reports it);
 * `onError` receives failures inside the hook (the connect then proceeds unmarked).
 * Prefer {@link connectMarked} / createProxySocketFactory in new code.
 */
export function markBeforeConnect(capture: CaptureAvailable, socket: net.Socket, mark: number, onError?: (err: Error) => void): void {
  if (!socket.connecting) {
    throw new Error(`SO_MARK must be set before connect: the socket is ${socket.destroyed ? 'destroyed' : 'already connected'}`);
  }
  const hook = (_ip: string, _port: number, family: number): void => {
    const internals = socket as unknown as { _handle?: AdoptableHandle | null };
    const handle = internals._handle;
    try {
      if (!handle) throw new Error('socket has no handle at connect time');
      const existing = findFd(socket);
      if (existing >= 0) {
        capture.addon.setMark(existing, mark);
        return;
      }
      const fd = capture.addon.createTcpSocket(family === 6 ? 6 : 4);
      try {
        capture.addon.setMark(fd, mark);
        const rc = handle.open(fd);
        if (rc !== 0) throw new Error(`adopting the marked descriptor failed (uv error ${rc})`);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
    } catch (err) {
      onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };
  // Every attempt (a host name with several addresses makes one per address, each on a new
  // handle) is marked; the hook goes away once connected or closed.
  const done = (): void => {
    socket.off('connectionAttempt', hook);
  };
  socket.on('connectionAttempt', hook);
  socket.once('connect', done);
  socket.once('close', done);
}
