/**
 * Counts gRPC length-prefixed messages (1 flag byte + 4-byte big-endian length + payload)
 * in a byte stream split arbitrarily into chunks, for istio_request/response_messages_total.
 * It only skips over payloads; it never copies or parses them.
 */
export class GrpcFrameCounter {
  messages = 0;
  /** Bytes of the current frame header seen so far (0-5), its length, then payload left. */
  private headerSeen = 0;
  private length = 0;
  private remaining = 0;

  feed(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      // Header bytes: byte 0 is the compressed flag, bytes 1-4 the length.
      const b = chunk[i] as number;
      if (this.headerSeen > 0) this.length = this.length * 256 + b;
      this.headerSeen++;
      i++;
      if (this.headerSeen === 5) {
        this.messages++;
        this.remaining = this.length;
        this.headerSeen = 0;
        this.length = 0;
      }
    }
  }
}

/** Envoy's mapping of a local HTTP status to a gRPC status, for gRPC requests answered by the waypoint. */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}
