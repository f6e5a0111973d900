import type { Writable } from 'node:stream';
import { trailerFields, type DownReq } from '../body';

/** How much of a request body is kept for a retry; a longer body is streamed once and never replayed. */
export const RETRY_BUFFER_LIMIT = 64 * 1024;

type End = (trailers: Record<string, string> | null) => void;

/**
 * A request body that a retry can send again. The first try streams it as it arrives
 * while the chunks are kept (up to RETRY_BUFFER_LIMIT); a later try gets the kept chunks
 * then the rest as it arrives, and the request's trailers at the end. Past the limit the
 * kept chunks are dropped and `replayable` turns false: a retry would send a truncated
 * body, so none is made. Backpressure: the source pauses while the current sink's buffer
 * is full, and between tries.
 */
export class ReplayableBody {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private sink: Writable | null = null;
  private end: End | null = null;
  replayable = true;

  constructor(private readonly src: DownReq) {
    src.on('data', (c: Buffer) => this.onData(c));
    src.once('end', () => {
      this.ended = true;
      this.end?.(trailerFields(src.trailers));
    });
  }

  /** Feeds this try's upstream request: what is kept, then the rest, then `end` with the trailers. A previous sink stops receiving. */
  attach(sink: Writable, end: End): void {
    this.sink = sink;
    this.end = end;
    for (const c of this.chunks) sink.write(c);
    if (this.ended) return end(trailerFields(this.src.trailers));
    sink.on('drain', () => {
      if (this.sink === sink) this.src.resume();
    });
    this.src.resume();
  }

  /** The try ended (retry or final answer): stop writing to its sink. */
  detach(): void {
    this.sink = null;
    this.end = null;
  }

  private onData(c: Buffer): void {
    if (this.replayable) {
      this.size += c.length;
      if (this.size > RETRY_BUFFER_LIMIT) {
        this.replayable = false;
        this.chunks = [];
      } else this.chunks.push(c);
    }
    const s = this.sink;
    if (s === null) {
      // Between tries (back-off): hold the rest of the body until the next try attaches.
      this.src.pause();
      return;
    }
    if (!s.write(c)) this.src.pause();
  }
}
