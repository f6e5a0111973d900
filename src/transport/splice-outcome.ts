import type { Duplex } from 'node:stream';
import { errorMessage, type Reason } from '../errors';
import { splice, type SpliceOutcome } from './splice';

/** How a splice ended, as a connection record takes it: the reason (null = clean) and a loggable message. */
export interface SpliceResult {
  readonly reason: Reason | null;
  readonly error: string | null;
  /** Bytes held for a side that was reset (never delivered); 0 for a clean end. */
  readonly discarded: number;
}

/** Copies both ways until both halves are done; resolves how it ended (never rejects). */
export type Splicer = (client: Duplex, upstream: Duplex) => Promise<SpliceResult>;

/**
 * The splicer the connection handlers use: the transport's splice() with IDLE_TIMEOUT, its
 * outcome reduced to what ConnectionResult.record() takes (reason, a loggable message, discarded bytes).
 */
export function createSplicer(idleTimeoutMs: number): Splicer {
  const opts = idleTimeoutMs > 0 ? { idleTimeout: idleTimeoutMs } : {};
  // splice() resumes sources paused before the hand-off (the SOCKS5 reader pauses its socket).
  // A plain then() with a shared mapper, not an async closure: a suspended async function
  // keeps a generator and its registers alive for the whole life of an idle connection.
  return (client, upstream) => splice(client, upstream, opts).then(toResult);
}

function toResult(o: SpliceOutcome): SpliceResult {
  return { reason: o.reason, error: o.error === undefined ? null : errorMessage(o.error), discarded: o.discarded };
}
