import { errorMessage } from '../errors';
import { splice } from './splice';
import type { Splicer } from './outbound-types';

/**
 * The splicer the connection handlers use: the transport's splice() with IDLE_TIMEOUT, its
 * outcome reduced to what ConnectionResult.record() takes (reason + a loggable message).
 */
export function createSplicer(idleTimeoutMs: number): Splicer {
  const opts = idleTimeoutMs > 0 ? { idleTimeout: idleTimeoutMs } : {};
  return async (client, upstream) => {
    // splice() resumes sources paused before the hand-off (the SOCKS5 reader pauses its socket).
    const o = await splice(client, upstream, opts);
    return { reason: o.reason, error: o.error === undefined ? null : errorMessage(o.error) };
  };
}
