import type { RetryPolicy } from './types';

/** How one try ended, as the retry policy sees it. */
export type TryOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus: number | null }
  /** The endpoint could not be reached (connection refused, unreachable, connect timeout). */
  | { readonly kind: 'connect-failure' }
  /** The stream was refused (HTTP/2 REFUSED_STREAM) before the endpoint processed it. */
  | { readonly kind: 'refused-stream' }
  /** Reset or disconnected before any response headers. */
  | { readonly kind: 'reset' }
  /** The per-try timeout fired before response headers. */
  | { readonly kind: 'per-try-timeout' };

const GRPC_RETRY: Readonly<Record<string, number>> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

/**
 * Envoy's retry conditions: `5xx` (any 5xx, reset, connect failure, per-try timeout),
 * `gateway-error` (502/503/504, and a per-try timeout, which Envoy answers as 504),
 * `reset`, `connect-failure`, `refused-stream`, `retriable-4xx` (409),
 * `retriable-status-codes` (the listed codes) and the gRPC ones on the response's
 * grpc-status (a trailers-only answer carries it in the headers).
 */
export function isRetriable(p: RetryPolicy, o: TryOutcome): boolean {
  const on = p.retryOn;
  switch (o.kind) {
    case 'connect-failure':
      return on.includes('connect-failure') || on.includes('5xx') || on.includes('gateway-error');
    case 'refused-stream':
      return on.includes('refused-stream') || on.includes('5xx');
    case 'reset':
      return on.includes('reset') || on.includes('5xx');
    case 'per-try-timeout':
      return on.includes('5xx') || on.includes('gateway-error') || on.includes('reset');
    case 'response': {
      const s = o.status;
      if (s >= 500 && on.includes('5xx')) return true;
      if ((s === 502 || s === 503 || s === 504) && on.includes('gateway-error')) return true;
      if (s === 409 && on.includes('retriable-4xx')) return true;
      if (on.includes('retriable-status-codes') && p.statusCodes.includes(s)) return true;
      if (o.grpcStatus !== null) for (const c of on) if (GRPC_RETRY[c] === o.grpcStatus) return true;
      return false;
    }
  }
}

/** Fully jittered exponential back-off: uniform in [0, base·2^(n)) capped at 10·base, for retry n (1-based). */
export function backoffMs(p: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min(p.backoffBaseMs * 2 ** retry, p.backoffBaseMs * 10);
  return Math.floor(random() * ceiling);
}

/** Retry budget (Envoy's defaults): retries in flight may be 20% of the cluster's active requests, at least 3. */
export function retryBudget(activeRequests: number, maxRetries: number | null): number {
  const budget = Math.max(3, Math.floor(activeRequests * 0.2));
  return maxRetries === null ? budget : Math.min(budget, maxRetries);
}
