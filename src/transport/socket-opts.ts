import type { Socket } from 'node:net';

/**
 * Per-socket options for proxied TCP legs and HBONE connections.
 *
 * Listener owners: create servers and sockets with `allowHalfOpen: true`, otherwise Node
 * ends our write side as soon as the peer's FIN arrives and splice() cannot carry a
 * half-close (field-notes T3). For 15008, `pauseOnConnect: true` is preferred so no
 * TLS bytes are pulled into JS before HboneServer wraps the socket (buffered bytes are
 * replayed by Node anyway).
 */
export interface SocketOptions {
  /** TCP_NODELAY: proxies must not add Nagle delay on top of the app's own writes. */
  readonly noDelay: boolean;
  /** SO_KEEPALIVE on (KEEPALIVE_ENABLED). */
  readonly keepalive: boolean;
  /** Keepalive idle time in ms (KEEPALIVE_TIME). */
  readonly keepaliveTime: number;
  /** SO_MARK value (PACKET_MARK) so capture rules skip proxy traffic; applied only with `markSocket`. */
  readonly mark?: number;
  /**
   * Sets SO_MARK through the native addon (src/native, owned elsewhere). Injected rather
   * than imported so this module builds and runs where the addon is absent; a throw is
   * reported, never fatal.
   */
  readonly markSocket?: (socket: Socket, mark: number) => void;
}

export const DEFAULT_SOCKET_OPTIONS: SocketOptions = { noDelay: true, keepalive: true, keepaliveTime: 180_000 };

/**
 * Applies the options to a socket. Use it on ACCEPTED sockets (the descriptor exists).
 * For sockets you dial, use `prepareDial` instead: before connect there is no descriptor
 * yet, so SO_MARK would fail or land after the SYN. Returns the SO_MARK failure, if any,
 * so the caller can log it once with context.
 */
export function applySocketOptions(socket: Socket, opts: SocketOptions): Error | undefined {
  socket.setNoDelay(opts.noDelay);
  if (opts.keepalive) socket.setKeepAlive(true, opts.keepaliveTime);
  if (opts.mark !== undefined && opts.markSocket) {
    try {
      opts.markSocket(socket, opts.mark);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }
  return undefined;
}

/**
 * Prepares a socket we are about to dial. NODELAY/keepalive are queued by Node until the
 * connect. SO_MARK must be on the descriptor before the SYN leaves (NAT capture rules
 * look only at the first packet), but Node creates the descriptor inside connect(); it
 * does emit 'connectionAttempt' between bind() and connect() (Node ≥ 20.12). So when a
 * mark is configured the dial must bind: `prepareDial` returns the local address to bind
 * (the requested one, or the wildcard of the target's family) and sets the mark in that
 * window. `onMarkError` gets the addon's failure (the dial still proceeds).
 */
export function prepareDial(
  socketFamily: 4 | 6,
  localAddress: string | undefined,
  opts: SocketOptions,
): { localAddress: string | undefined; attach: (socket: Socket, onMarkError: (err: Error) => void) => void } {
  const marking = opts.mark !== undefined && opts.markSocket !== undefined;
  const bindTo = localAddress ?? (marking ? (socketFamily === 6 ? '::' : '0.0.0.0') : undefined);
  return {
    localAddress: bindTo,
    attach: (socket, onMarkError) => {
      socket.setNoDelay(opts.noDelay);
      if (opts.keepalive) socket.setKeepAlive(true, opts.keepaliveTime);
      if (!marking) return;
      socket.once('connectionAttempt', () => {
        try {
          opts.markSocket!(socket, opts.mark!);
        } catch (err) {
          onMarkError(err instanceof Error ? err : new Error(String(err)));
        }
      });
    },
  };
}
