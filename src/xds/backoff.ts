import type { TerminationReason } from './metrics';

/** ztunnel's xDS reconnect bounds. */
export const XDS_INITIAL_BACKOFF_MS = 10;
export const XDS_MAX_BACKOFF_MS = 15_000;

export interface XdsBackoffLimits {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** One reconnect decision: how long to wait now, and the value the next failure grows from. */
export interface XdsRetry {
  readonly waitMs: number;
  readonly carryMs: number;
}

/**
 * ztunnel's reconnect schedule, as a pure step. The carried value starts at the initial
 * delay; a failure (connection error, or a gRPC error such as a refused token) doubles it
 * BEFORE waiting, so the first retry after a failure waits 20 ms, then 40, 80, … up to the
 * cap. A stream that simply ended (server restart, GOAWAY, max connection age) is a normal
 * reconnect: it waits the initial delay and the schedule starts over. A stream the server
 * completed cleanly reconnects at once.
 */
export function nextXdsRetry(carryMs: number, termination: TerminationReason, limits: XdsBackoffLimits): XdsRetry {
  switch (termination) {
    case 'ConnectionError':
    case 'Error': {
      const d = Math.min(limits.maxMs, carryMs * 2);
      return { waitMs: d, carryMs: d };
    }
    case 'Reconnect':
      return { waitMs: limits.initialMs, carryMs: limits.initialMs };
    case 'Complete':
      return { waitMs: 0, carryMs: limits.initialMs };
  }
}
