import type { Duplex } from 'node:stream';

export type DetectedProtocol = 'http1' | 'h2c' | 'tcp';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An HTTP/1.x request line: token method, space, a target without spaces, space, HTTP/1.x. */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ \S+ HTTP\/1\.[01]\r?$/;
/** Enough for any request line worth proxying as HTTP (longer ones fall back to TCP). */
const MAX_SNIFF = 8192;

/**
 * Classifies buffered first bytes: the HTTP/2 connection preface (prior knowledge), an
 * HTTP/1.x request line, or TCP. 'more' = undecided, wait for more bytes.
 */
export function classify(buf: Buffer): DetectedProtocol | 'more' {
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return buf.length >= H2_PREFACE.length ? 'h2c' : 'more';
  const nl = buf.indexOf(0x0a);
  if (nl < 0) {
    if (buf.length >= MAX_SNIFF) return 'tcp';
    // Until the line ends, keep waiting only while it can still be a request line (a method token first).
    return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+( [^\r\n]*)?$/.test(buf.toString('latin1')) ? 'more' : 'tcp';
  }
  return REQUEST_LINE.test(buf.subarray(0, nl).toString('latin1')) ? 'http1' : 'tcp';
}

/**
 * Reads the first bytes of `s` until they classify (or the timeout passes: a
 * server-first protocol sends nothing, so it is TCP), then puts them back with unshift so
 * the chosen handler sees the stream from its first byte.
 */
export function detectProtocol(s: Duplex, timeoutMs: number): Promise<DetectedProtocol> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (p: DetectedProtocol): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('close', onEnd);
      if (buf.length > 0) s.unshift(buf);
      resolve(p);
    };
    const onReadable = (): void => {
      let c: Buffer | null;
      while ((c = s.read() as Buffer | null) !== null) buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      const r = classify(buf);
      if (r !== 'more') finish(r);
    };
    const onEnd = (): void => finish('tcp');
    const timer = setTimeout(() => finish('tcp'), timeoutMs);
    s.on('readable', onReadable);
    s.once('end', onEnd);
    s.once('close', onEnd);
  });
}
