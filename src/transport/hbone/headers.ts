import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { parseSocketAddr, type SocketAddr } from '../../util/socket-addr';
import type { HboneTarget } from './types';

/**
 * CONNECT request headers (RFC 9113 §8.5): `:method` + `:authority` only, no `:scheme` or
 * `:path`; END_STREAM is not set. Caller headers (baggage, forwarded, traceparent) follow,
 * but a caller can never override or add a pseudo-header.
 */
export function buildConnectHeaders(target: HboneTarget): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(target.headers)) {
    if (name.startsWith(':')) continue;
    out[name.toLowerCase()] = target.headers[name];
  }
  out[':method'] = 'CONNECT';
  out[':authority'] = target.authority;
  return out;
}

export type ConnectCheck =
  | { readonly ok: true; readonly authority: SocketAddr }
  | { readonly ok: false; readonly status: 400 | 405; readonly message: string };

/**
 * Validates an inbound CONNECT ourselves rather than trusting the http2 module
 * (it passes malformed CONNECTs through): method CONNECT, no `:scheme`/`:path`/`:protocol`, and an
 * `:authority` that is `ip:port` (v6 bracketed) with port 1–65535. A hostname authority
 * (double-HBONE) is not served by the node proxy, so it is a 400 like ztunnel's
 * "cannot parse" case. The messages name the offending value for the log.
 */
export function checkConnectHeaders(headers: IncomingHttpHeaders): ConnectCheck {
  const method = headers[':method'];
  if (method !== 'CONNECT') {
    return { ok: false, status: 405, message: `method ${JSON.stringify(method ?? '')} not allowed: HBONE accepts only CONNECT` };
  }
  for (const forbidden of [':scheme', ':path', ':protocol']) {
    if (headers[forbidden] !== undefined) return { ok: false, status: 400, message: `CONNECT must not carry ${forbidden} (RFC 9113 §8.5)` };
  }
  const authority = headers[':authority'];
  if (typeof authority !== 'string' || authority === '') return { ok: false, status: 400, message: 'CONNECT without :authority' };
  const addr = parseSocketAddr(authority);
  if (!addr) return { ok: false, status: 400, message: `:authority ${JSON.stringify(authority)} is not ip:port with port 1-65535` };
  return { ok: true, authority: addr };
}
