import { connect, isIP } from 'node:net';

/** What one HTTP GET through a SOCKS5 proxy produced. */
export type SocksHttpResult =
  | { readonly kind: 'response'; readonly status: number; readonly body: string; readonly ms: number }
  | { readonly kind: 'socks-refused'; readonly code: number; readonly ms: number }
  | { readonly kind: 'error'; readonly message: string; readonly ms: number };

/**
 * GET `path` (default /) through a SOCKS5 proxy from a chosen source IP (what
 * `curl --interface <from> --socks5-hostname <proxy> http://<host>:<port>/` does), bounded by
 * `timeoutMs`. Used by the mesh self-check; never throws.
 */
export function socksHttpGet(proxy: { ip: string; port: number }, from: string, host: string, port: number, timeoutMs = 5000, path = '/', headers: Readonly<Record<string, string>> = {}): Promise<SocksHttpResult> {
  const started = Date.now();
  const ms = (): number => Date.now() - started;
  return new Promise((resolve) => {
    const s = connect({ host: proxy.ip, port: proxy.port, localAddress: from });
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'reply' | 'http' = 'greeting';
    let settled = false;
    const done = (r: SocksHttpResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ kind: 'error', message: `no answer within ${timeoutMs}ms (stage ${stage})`, ms: ms() }), timeoutMs);
    s.on('error', (err) => done({ kind: 'error', message: err.message, ms: ms() }));
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (stage === 'greeting' && buf.length >= 2) {
        if (buf[1] !== 0) return done({ kind: 'error', message: `proxy refused no-auth (method 0x${(buf[1] as number).toString(16)})`, ms: ms() });
        buf = buf.subarray(2);
        stage = 'reply';
        s.write(connectRequest(host, port));
      }
      if (stage === 'reply' && buf.length >= 2) {
        if (buf[1] !== 0) return done({ kind: 'socks-refused', code: buf[1] as number, ms: ms() });
        if (buf.length < 10) return;
        buf = buf.subarray(10);
        stage = 'http';
        const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
        s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
      }
    });
    s.on('close', () => {
      if (stage !== 'http') return done({ kind: 'error', message: `proxy closed the connection during the SOCKS ${stage}`, ms: ms() });
      const text = buf.toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m) return done({ kind: 'error', message: `not an HTTP response: ${JSON.stringify(text.slice(0, 60))}`, ms: ms() });
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      done({ kind: 'response', status: Number(m[1]), body, ms: ms() });
    });
  });
}

function connectRequest(host: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  if (isIP(host) === 4) return Buffer.concat([Buffer.from([5, 1, 0, 1, ...host.split('.').map(Number)]), p]);
  const name = Buffer.from(host, 'latin1');
  return Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, p]);
}
