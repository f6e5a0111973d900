import type { Server } from 'node:net';
import type { ListenAddr, SocketAddr } from '../util/socket-addr';
import { formatListenAddr, makeSocketAddr } from '../util/socket-addr';

/** A start-up failure that names the address, the listener and the cause. */
export class ListenError extends Error {
  readonly code: string;
  constructor(readonly listener: string, readonly address: string, cause: NodeJS.ErrnoException) {
    const why = cause.code === 'EADDRINUSE' ? 'address already in use' : cause.code === 'EADDRNOTAVAIL' ? 'address not available on this host' : cause.code === 'EACCES' ? 'permission denied' : cause.message;
    super(`cannot bind ${listener} listener on ${address}: ${why}`, { cause });
    this.name = 'ListenError';
    this.code = cause.code ?? 'LISTEN';
  }
}

/**
 * Binds a server and returns the bound address. `[::]` falls back to `0.0.0.0` on hosts
 * without IPv6 (ztunnel's STATS_ADDR behaviour: a node without IPv6 still serves metrics).
 */
export async function listen(server: Server, addr: ListenAddr, name: string, hostForNull = '0.0.0.0'): Promise<SocketAddr> {
  const host = addr.host ?? hostForNull;
  try {
    return await listenOnce(server, host, addr.port);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) {
      try {
        return await listenOnce(server, '0.0.0.0', addr.port);
      } catch (e2) {
        throw new ListenError(name, `0.0.0.0:${addr.port}`, e2 as NodeJS.ErrnoException);
      }
    }
    throw new ListenError(name, formatListenAddr({ host, port: addr.port }), err);
  }
}

function listenOnce(server: Server, host: string, port: number): Promise<SocketAddr> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, ipv6Only: false }, () => {
      server.off('error', onError);
      const a = server.address();
      if (a && typeof a === 'object') resolve(makeSocketAddr(a.address, a.port));
      else reject(new Error('server has no address'));
    });
  });
}

/** Closes a server and resolves when it has stopped accepting (idempotent). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
