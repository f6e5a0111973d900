import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../../errors';
import type { SpiffeId } from '../../identity/spiffe';
import type { SocketAddr } from '../../util/socket-addr';
import { ignoreStreamError } from './connect-stream';
import type { InboundConnect } from './types';

/**
 * One validated inbound CONNECT awaiting the node proxy's decision. Exactly one of
 * accept/reject takes effect; `aborted` resolves if the stream dies first (peer RST,
 * session lost), so the handler can abandon its upstream dial.
 */
export class PendingConnect implements InboundConnect {
  readonly aborted: Promise<void>;
  private state: 'pending' | 'accepted' | 'rejected' | 'aborted' = 'pending';
  private resolveAborted!: () => void;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly authority: SocketAddr,
    readonly peerIdentity: SpiffeId,
    readonly peerAddr: SocketAddr,
    readonly localAddr: SocketAddr,
    readonly headers: Readonly<IncomingHttpHeaders>,
  ) {
    this.aborted = new Promise((resolve) => (this.resolveAborted = resolve));
    stream.on('error', ignoreStreamError);
    stream.once('close', this.onEarlyClose);
  }

  reject(status: 400 | 401 | 503, _reason: string): void {
    if (this.state !== 'pending') return;
    this.state = 'rejected';
    this.stream.removeListener('close', this.onEarlyClose);
    respondAndClose(this.stream, status);
  }

  accept(responseHeaders: Record<string, string> = {}): Duplex {
    if (this.state === 'aborted' || this.stream.destroyed || this.stream.closed) {
      this.state = 'aborted';
      throw new ProxyError('HBONE_RESET', `the CONNECT stream for ${this.authority.ip}:${this.authority.port} closed before it was accepted`);
    }
    if (this.state !== 'pending') throw new ProxyError('INTERNAL', `CONNECT already ${this.state}`);
    this.state = 'accepted';
    this.stream.removeListener('close', this.onEarlyClose);
    const out: Record<string, string | number> = {};
    for (const k of Object.keys(responseHeaders)) if (!k.startsWith(':')) out[k] = responseHeaders[k] as string;
    out[':status'] = 200;
    this.stream.respond(out);
    return this.stream;
  }

  private readonly onEarlyClose = (): void => {
    if (this.state !== 'pending') return;
    this.state = 'aborted';
    this.resolveAborted();
  };
}

/**
 * Answers a CONNECT with a final non-200 status (END_STREAM on the HEADERS). The client
 * reads the status before sending payload, so nothing is lost; a client that keeps
 * sending anyway gets RST_STREAM(NO_ERROR) once our side is done (RFC 9113 §8.1).
 */
export function respondAndClose(stream: ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    try {
      stream.respond({ ':status': status }, { endStream: true });
    } catch {
      stream.close();
      return;
    }
  }
  stream.resume(); // drain any payload so flow control does not stall the session
}
