import { connect, isIP, type Socket } from 'node:net';
import type { SocketAddr } from '../../src/util/socket-addr';

/** Thrown when the proxy answers the CONNECT with a non-zero reply code. */
export class SocksReplyError extends Error {
  constructor(readonly code: number | null) {
    super(code === null ? 'SOCKS proxy closed without a reply' : `SOCKS reply code 0x${code.toString(16).padStart(2, '0')}`);
  }
}

/**
 * A minimal RFC 1928 client: no-auth greeting, CONNECT to an IP or a domain name, from
 * `localAddress` (the client's workload IP). Resolves the connected socket after a success
 * reply; rejects with SocksReplyError otherwise. Bounded by `timeoutMs`.
 */
export function socksConnect(proxy: SocketAddr, target: { host: string; port: number }, localAddress: string, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: proxy.ip, port: proxy.port, localAddress, allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'reply' = 'greeting';
    const timer = setTimeout(() => fail(new Error(`SOCKS handshake with ${proxy.ip}:${proxy.port} timed out`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    };
    s.on('error', fail);
    s.on('close', () => fail(new SocksReplyError(stage === 'reply' && buf.length >= 2 ? (buf[1] as number) : null)));
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (stage === 'greeting') {
        if (buf.length < 2) return;
        if (buf[1] !== 0) return fail(new SocksReplyError(buf[1] as number));
        buf = buf.subarray(2);
        stage = 'reply';
        s.write(request(target));
      }
      if (buf.length < 2) return;
      if (buf[1] !== 0) return fail(new SocksReplyError(buf[1] as number));
      const need = buf[3] === 4 ? 22 : 10;
      if (buf.length < need) return;
      clearTimeout(timer);
      done = true;
      s.off('readable', onReadable);
      s.removeAllListeners('close');
      s.removeAllListeners('error');
      const rest = buf.subarray(need);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    // Read with 'readable', not 'data': after the reply the socket must not be left flowing
    // with no listener, or bytes a server-first app sends right behind the reply are lost
    // before the caller attaches its own reader (the unshifted rest is kept either way).
    let done = false;
    const onReadable = (): void => {
      let c: Buffer | null;
      while (!done && (c = s.read() as Buffer | null) !== null) onData(c);
    };
    s.on('readable', onReadable);
  });
}

function request(t: { host: string; port: number }): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(t.port);
  const fam = isIP(t.host);
  if (fam === 4) return Buffer.concat([Buffer.from([5, 1, 0, 1, ...t.host.split('.').map(Number)]), port]);
  if (fam === 6) throw new Error('IPv6 targets are not used by these tests');
  const name = Buffer.from(t.host, 'latin1');
  return Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, port]);
}

/** The reply code of a SOCKS5 CONNECT: 0 when it succeeded (the socket is then closed), null when the proxy closed without a reply. */
export async function socksReplyCode(proxy: SocketAddr, target: { host: string; port: number }, localAddress: string): Promise<number | null> {
  try {
    (await socksConnect(proxy, target, localAddress)).destroy();
    return 0;
  } catch (err) {
    if (err instanceof SocksReplyError) return err.code;
    throw err;
  }
}
