import net from 'node:net';
import type { HostPort } from './net-util';

/**
 * How a load generator reaches the server through a path: connect to `first`
 * (optionally from `localAddress`, e.g. a mesh client workload IP), and if `socks5Target`
 * is set, ask the SOCKS5 proxy at `first` for a CONNECT to it.
 */
export interface Entry {
  readonly first: HostPort;
  readonly socks5Target?: HostPort;
  readonly localAddress?: string;
}

export const MODE_SINK = 'S';
export const MODE_ECHO = 'E';

/** Reads exactly n bytes during a handshake (the socket is paused afterwards). */
function readExactly(sock: net.Socket, n: number, buffered: { buf: Buffer }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (buffered.buf.length >= n) {
        const out = buffered.buf.subarray(0, n);
        buffered.buf = buffered.buf.subarray(n);
        sock.off('data', onData);
        sock.off('error', onError);
        sock.off('close', onClose);
        resolve(out);
        return true;
      }
      return false;
    };
    const onData = (d: Buffer): void => {
      buffered.buf = Buffer.concat([buffered.buf, d]);
      check();
    };
    const onError = (e: Error): void => reject(e);
    const onClose = (): void => reject(new Error('closed during SOCKS5 handshake'));
    if (check()) return;
    sock.on('data', onData);
    sock.once('error', onError);
    sock.once('close', onClose);
  });
}

function ipv4Bytes(ip: string): number[] {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`SOCKS5 target must be IPv4, got ${ip}`);
  return parts;
}

/** RFC 1928 no-auth CONNECT handshake on an open socket. */
async function socks5Connect(sock: net.Socket, target: HostPort): Promise<void> {
  const buffered = { buf: Buffer.alloc(0) };
  sock.write(Buffer.from([5, 1, 0]));
  const hello = await readExactly(sock, 2, buffered);
  if (hello[0] !== 5 || hello[1] !== 0) throw new Error(`SOCKS5 method refused (${hello.toString('hex')})`);
  sock.write(Buffer.from([5, 1, 0, 1, ...ipv4Bytes(target.host), target.port >> 8, target.port & 0xff]));
  const head = await readExactly(sock, 4, buffered);
  if (head[1] !== 0) throw new Error(`SOCKS5 CONNECT to ${target.host}:${target.port} failed with reply ${head[1]}`);
  const addrLen = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await readExactly(sock, 1, buffered))[0]!;
  await readExactly(sock, addrLen + 2, buffered);
  if (buffered.buf.length > 0) throw new Error('unexpected bytes after the SOCKS5 reply');
}

/**
 * Opens one connection through the path and announces the server mode. Bounded by
 * timeoutMs; on failure the socket is destroyed.
 */
export function openConn(entry: Entry, mode: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: entry.first.host, port: entry.first.port, ...(entry.localAddress ? { localAddress: entry.localAddress } : {}), noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connect through ${entry.first.host}:${entry.first.port} timed out after ${timeoutMs}ms`));
    }, timeoutMs);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.once('error', fail);
    sock.once('connect', () => {
      const ready = entry.socks5Target ? socks5Connect(sock, entry.socks5Target) : Promise.resolve();
      ready.then(
        () => {
          clearTimeout(timer);
          sock.off('error', fail);
          sock.write(mode);
          resolve(sock);
        },
        (e: Error) => fail(e),
      );
    });
  });
}
