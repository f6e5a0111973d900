import { createServer, type Server, type Socket } from 'node:net';
import { makeSocketAddr, type SocketAddr } from '../../src/util/socket-addr';

export interface EchoServer {
  readonly addr: SocketAddr;
  /** Peer addresses of accepted connections, in order (to assert who connected). */
  readonly peers: string[];
  close(): Promise<void>;
}

/**
 * A TCP echo server (ztunnel's test_helpers read-write mode): every byte read is written
 * back; a FIN from the client is answered with a FIN after the echo (half-close kept).
 * `onSocket` replaces the echo for apps that behave otherwise (stream, stop reading).
 */
export function startEchoServer(host: string, port = 0, onSocket: (s: Socket) => void = (s) => s.pipe(s)): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const peers: string[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    peers.push(`${s.remoteAddress}:${s.remotePort}`);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      const a = server.address();
      if (!a || typeof a === 'string') return reject(new Error('no address'));
      resolve({
        addr: makeSocketAddr(a.address, a.port),
        peers,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Writes `payload`, half-closes, and collects everything until the peer's FIN (bounded). */
export function exchange(socket: Socket, payload: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply within ${timeoutMs}ms (got ${Buffer.concat(chunks).length} bytes)`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
      socket.end();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.end(payload);
  });
}

/** Resolves when the socket closes, or rejects after `timeoutMs`. */
export function waitClosed(socket: Socket, timeoutMs = 10_000): Promise<{ hadError: boolean; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs}ms`)), timeoutMs);
    socket.once('close', (hadError) => {
      clearTimeout(timer);
      resolve({ hadError, data: Buffer.concat(chunks) });
    });
  });
}
