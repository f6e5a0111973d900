import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { ProxyError, classifyError } from '../errors';
import { formatSocketAddr, type SocketAddr } from '../util/socket-addr';
import type { Workload } from '../state/types';
import { PooledReadSocket } from './splice-readbuf';

/**
 * Makes an unconnected TCP socket for one dial, already bound to `localAddress` when given
 * (port-less; `transparent` for a non-local original source); the dial connects it.
 */
export type SocketFactory = (family: 4 | 6, localAddress?: string, transparent?: boolean) => Socket;

/**
 * In-pod mode: the sockets a pod's connections dial from, made inside that pod's network
 * namespace with the packet mark (so they leave from the pod and its rules skip them).
 */
export interface PodSocketSource {
  /** The pod behind an in-pod listener (AcceptInfo.pod). */
  forPod(podUid: string): SocketFactory | undefined;
  /** The pod running a local workload (inbound: the app is dialled from its own pod). */
  forWorkload(w: Workload): SocketFactory | undefined;
}

export interface DialOptions {
  readonly timeoutMs: number;
  /** Source IP (the client's workload IP on loopback meshes, or the original source). */
  readonly localAddress?: string | undefined;
  /** `localAddress` is not local to this host: bind it transparently (original source). */
  readonly transparent?: boolean;
  /** Socket options for the dial (NODELAY, keepalive, SO_MARK before the SYN); see prepareDial. */
  readonly prepare?: DialPreparer | undefined;
  /** In-pod: the socket comes from the pod's namespace (already marked); `prepare` is not used. */
  readonly createSocket?: SocketFactory | undefined;
}

/**
 * Prepares one outgoing socket: returns the local address to pass to net.connect() and
 * attaches the options synchronously after it, so SO_MARK (and a transparent source) are
 * on the descriptor before the first packet leaves and the capture rules never loop the
 * proxy's own connection back into 15001. See prepareDial in socket-opts.ts.
 */
export type DialPreparer = (family: 4 | 6, localAddress: string | undefined, transparent?: boolean) => { localAddress: string | undefined; attach: (s: Socket) => void };

/**
 * Plain TCP connect to an app or a non-mesh destination, with a timeout. allowHalfOpen is
 * required by splice (a FIN from one side must not close the other direction). Rejects
 * with ProxyError CONNECT / CONNECT_TIMEOUT naming the address; the socket is destroyed on
 * failure, so the caller owns a socket only when this resolves.
 */
export function dialTcp(addr: SocketAddr, opts: DialOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    if (opts.createSocket) {
      socket = opts.createSocket(addr.family, opts.localAddress, opts.transparent ?? false).connect({ host: addr.ip, port: addr.port });
    } else {
      const prepared = opts.prepare?.(addr.family, opts.localAddress, opts.transparent ?? false);
      const localAddress = prepared ? prepared.localAddress : opts.localAddress;
      // Reads into reused buffers once spliced (PooledReadSocket); otherwise net.connect().
      socket = new PooledReadSocket({ allowHalfOpen: true, noDelay: true }).connect({ host: addr.ip, port: addr.port, ...(localAddress ? { localAddress } : {}) });
      prepared?.attach(socket);
    }
    const target = formatSocketAddr(addr);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ProxyError('CONNECT_TIMEOUT', `connect to ${target} timed out after ${opts.timeoutMs}ms`, { target }));
    }, opts.timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      const reason = classifyError(err);
      reject(new ProxyError(reason === 'INTERNAL' || reason === 'RESET' ? 'CONNECT' : reason, `connect to ${target} failed: ${err.message}`, { target }, err));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Force-closes one leg (drain, late denial). A plain TCP socket is reset (RST) so the app
 * sees an abort rather than a clean end. An HTTP/2 stream is destroyed with an error, which
 * sends RST_STREAM(INTERNAL_ERROR) and no END_STREAM, so the peer proxy resets its side
 * too (a plain destroy() sends RST_STREAM(NO_ERROR), which Node hands a peer that already
 * half-closed as a clean end of stream; close(code) would even send END_STREAM first).
 */
export function abortLeg(d: Duplex | null | undefined): void {
  if (!d || d.destroyed) return;
  if (d instanceof Socket && !(d instanceof TLSSocket)) {
    try {
      d.resetAndDestroy();
      return;
    } catch {
      // not connected yet: plain destroy below
    }
  }
  d.destroy('rstCode' in d ? new Error('connection aborted by the proxy') : undefined);
}
