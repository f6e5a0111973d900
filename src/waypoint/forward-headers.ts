import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderBag } from './l7/filters';
import { nextTraceparent } from './request-context';

/** Connection-specific headers that never cross a hop (RFC 9110 §7.6.1, RFC 9113 §8.2.2); host travels as Host or :authority. */
export const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'http2-settings']);

/** Request headers as forwarded: hop-by-hop dropped, x-request-id and traceparent set. */
export function forwardHeaders(h: IncomingHttpHeaders, xrid: string): HeaderBag {
  const out: HeaderBag = {};
  const listed = new Set(String(h['connection'] ?? '').toLowerCase().split(',').map((s) => s.trim()));
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || HOP.has(k) || listed.has(k)) continue;
    out[k] = v;
  }
  out['x-request-id'] = xrid;
  out['traceparent'] = nextTraceparent(typeof h['traceparent'] === 'string' ? h['traceparent'] : undefined);
  return out;
}

