import { Duplex } from 'node:stream';
import type { SpiffeId } from '../identity/spiffe';

/**
 * Presents a tunnel stream (an HBONE CONNECT stream) as the socket node:http and
 * node:http2 expect. Why not hand them the Http2Stream itself: Node 20's Http2Stream
 * corrupts string chunks written through writev (http writes headers as latin1 strings
 * while corked), and http's Agent calls ref/unref/setKeepAlive that streams lack. Here
 * strings become Buffers before they reach the stream (decodeStrings), and the socket
 * methods are no-ops. Handlers are bound once; nothing is allocated per chunk.
 */
export class StreamSocket extends Duplex {
  bytesRead = 0;
  bytesWritten = 0;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly encrypted = false;
  /** The verified identity of the peer that answered the tunnel (set by whoever opened it). */
  peerIdentity: SpiffeId | null = null;

  constructor(
    readonly inner: Duplex,
    peer?: { ip: string; port: number },
  ) {
    super({ allowHalfOpen: true, decodeStrings: true });
    this.remoteAddress = peer?.ip;
    this.remotePort = peer?.port;
    inner.on('data', this.onData);
    inner.on('end', this.onEnd);
    inner.on('error', this.onError);
    inner.on('close', this.onClose);
  }

  private readonly onData = (c: Buffer): void => {
    this.bytesRead += c.length;
    if (!this.push(c)) this.inner.pause();
  };

  private readonly onEnd = (): void => {
    this.push(null);
  };

  private readonly onError = (err: Error): void => {
    this.destroy(err);
  };

  private readonly onClose = (): void => {
    if (!this.destroyed) this.destroy();
  };

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    this.inner.write(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.inner.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = (chunks[i] as { chunk: Buffer }).chunk;
      this.bytesWritten += c.length;
      if (i === chunks.length - 1) this.inner.write(c, cb);
      else this.inner.write(c);
    }
    this.inner.uncork();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.off('data', this.onData);
    if (!this.inner.destroyed) this.inner.destroy(err ?? undefined);
    cb(err);
  }

  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
