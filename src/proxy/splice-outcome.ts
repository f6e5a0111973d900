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
    const running = splice(client, upstream, opts);
    // A source explicitly paused earlier (the SOCKS5 handshake reader pauses the socket so
    // no payload is read before the upstream exists) does not flow again just because
    // splice added 'data' listeners; its listeners are attached now, so resume it.
    if (client.isPaused()) client.resume();
    if (upstream.isPaused()) upstream.resume();
    const o = await running;
    return { reason: o.reason, error: o.error === undefined ? null : errorMessage(o.error) };
  };
}
