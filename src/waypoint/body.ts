import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { Writable } from 'node:stream';
import { HOP } from './forward-headers';

/** A downstream request / response: node:http for HTTP/1.1 tunnels, node:http2's compatibility API for h2c. */
export type DownReq = http.IncomingMessage | http2.Http2ServerRequest;
export type DownRes = http.ServerResponse | http2.Http2ServerResponse;

/** A request without a body: nothing to stream and no trailers can follow. */
export function hasNoBody(req: DownReq): boolean {
  if (req.readableEnded) return true;
  if (req.httpVersion === '2.0') return (req as http2.Http2ServerRequest).stream.endAfterHeaders;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (cl === undefined || cl === '0');
}

/**
 * Streams a request body to `up`, then hands its trailers (HTTP/1.1 chunked trailers or
 * HTTP/2 trailing HEADERS; null when none) to `end`, which ends the upstream request.
 */
export function forwardBody(req: DownReq, up: Writable, end: (trailers: Record<string, string> | null) => void): void {
  if (req.readableEnded) return end(trailerFields(req.trailers));
  req.pipe(up, { end: false });
  req.once('end', () => end(trailerFields(req.trailers)));
}

/** Trailer fields as forwarded (pseudo-headers and hop-by-hop fields dropped), or null when there are none. */
export function trailerFields(t: Record<string, string | string[] | undefined> | null | undefined): Record<string, string> | null {
  if (!t) return null;
  let out: Record<string, string> | null = null;
  for (const [k, v] of Object.entries(t)) {
    if (v === undefined || k.startsWith(':') || HOP.has(k)) continue;
    (out ??= {})[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

