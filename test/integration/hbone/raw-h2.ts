import * as tls from 'node:tls';

/** What the server answered on stream 1. */
export type RawAnswer = { kind: 'headers'; status: number | 'unknown' } | { kind: 'rst'; code: number } | { kind: 'goaway'; code: number } | { kind: 'closed' };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  if (n.length > 126 || v.length > 126) throw new Error('test header too long');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

const STATIC_STATUS: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };

/**
 * A deliberately dumb HTTP/2 client that sends exactly the pseudo-headers it is given, so
 * tests can send what Node's own client refuses to (CONNECT with :path, no :authority).
 */
export function rawRequest(opts: tls.ConnectionOptions, headers: [string, string][], timeoutMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ ...opts, ALPNProtocols: ['h2'] });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (a: RawAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => {
      settled = true;
      sock.destroy();
      reject(new Error('raw h2 request timed out'));
    }, timeoutMs);
    sock.on('error', () => done({ kind: 'closed' }));
    sock.on('close', () => done({ kind: 'closed' }));
    sock.once('secureConnect', () => {
      const block = Buffer.concat(headers.map(([k, v]) => literal(k, v)));
      sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x4, 1, block)]));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let guard = 0; buf.length >= 9 && guard < 100; guard++) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
        else if (type === 3 && stream === 1) done({ kind: 'rst', code: payload.readUInt32BE(0) });
        else if (type === 7) done({ kind: 'goaway', code: payload.readUInt32BE(4) });
        else if (type === 1 && stream === 1) done({ kind: 'headers', status: STATIC_STATUS[payload[0]!] ?? 'unknown' });
      }
    });
  });
}

/**
 * Rapid reset (CVE-2023-44487 pattern): `n` CONNECT streams each cancelled right after
 * its HEADERS, all in one burst. Resolves with the GOAWAY code if the server sends one,
 * or 'closed'/'open' (still open after `waitMs`).
 */
export function rapidReset(opts: tls.ConnectionOptions, n: number, waitMs = 2000): Promise<{ goaway: number | null; state: 'closed' | 'open' }> {
  return new Promise((resolve) => {
    const sock = tls.connect({ ...opts, ALPNProtocols: ['h2'] });
    let buf = Buffer.alloc(0);
    let goaway: number | null = null;
    const finish = (state: 'closed' | 'open'): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ goaway, state });
    };
    const timer = setTimeout(() => finish('open'), waitMs);
    sock.on('error', () => undefined);
    sock.on('close', () => finish('closed'));
    sock.once('secureConnect', () => {
      const parts: Buffer[] = [PREFACE, frame(4, 0, 0, Buffer.alloc(0))];
      const block = Buffer.concat([literal(':method', 'CONNECT'), literal(':authority', '127.0.0.1:80')]);
      const cancel = Buffer.alloc(4);
      cancel.writeUInt32BE(8);
      for (let i = 0; i < n; i++) {
        const id = 2 * i + 1;
        parts.push(frame(1, 0x4, id, block), frame(3, 0, id, cancel));
      }
      sock.write(Buffer.concat(parts));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let guard = 0; buf.length >= 9 && guard < 100_000; guard++) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        if (buf[3] === 7) goaway = buf.readUInt32BE(9 + 4);
        if (buf[3] === 4 && !(buf[4]! & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
        buf = buf.subarray(9 + len);
      }
    });
  });
}
