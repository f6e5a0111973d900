import type { RequestIdentity } from '../authn/types';

/**
 * What routing and L7 authorization look at for one HTTP request, built once per request
 * from the parsed request and the verified HBONE connection (never from headers for
 * identity). Header names are lower-case; multiple values are joined with ", ".
 */
export interface L7Request {
  readonly method: string;
  /** Path without the query string, as received. */
  readonly path: string;
  /** The raw query string without "?" ("" when none). */
  readonly query: string;
  /** Host (HTTP/1.1 Host or HTTP/2 :authority), lower-case, possibly with a port. */
  readonly host: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The verified JWT identity (RequestAuthentication), or null/absent without one. */
  readonly auth?: RequestIdentity | null;
}

/** The connection facts authorization may use. */
export interface L7Peer {
  /** TCP peer of the HBONE connection (the client's node proxy dials from the client IP on loopback meshes). */
  readonly sourceIp: string;
  /** The original client as reported by the verified peer in the HBONE `forwarded` header, else sourceIp. */
  readonly remoteIp: string;
  /** `td/ns/x/sa/y` from the verified peer certificate, or "" without one. */
  readonly principal: string;
  /** The peer identity's namespace, "" without one. */
  readonly namespace: string;
  /** The destination as dialled (service VIP or pod IP) and its port. */
  readonly destinationIp: string;
  readonly destinationPort: number;
}

/** Splits `/a/b?x=1` into path and query. */
export function splitPathQuery(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** Lower-case header map with multi-values joined (pseudo-headers dropped). */
export function flattenHeaders(h: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(h)) {
    if (k.startsWith(':')) continue;
    const v = h[k];
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}
