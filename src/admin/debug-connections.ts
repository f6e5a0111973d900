import type { AdminServer } from './admin-server';
import { sendJson } from './http-util';
import type { ConnectionRow, ConnectionTracker } from '../telemetry/connection-tracker';

/**
 * GET /debug/connections: every live proxied connection with direction, addresses, HBONE
 * authority, identities, bytes each way (read from the socket counters at request time)
 * and age, so nobody has to nsenter + ss to see what a proxy is doing.
 * `?direction=inbound|outbound` filters. `more` adds the rows other threads own (the node's
 * data-path worker threads).
 */
export function registerDebugConnections(admin: AdminServer, tracker: ConnectionTracker, more?: () => Promise<ConnectionRow[]>): void {
  admin.addHandler('/debug/connections', 'live proxied connections (bytes from socket counters); ?direction=inbound|outbound', async (_req, res, url) => {
    const dir = url.searchParams.get('direction');
    const all = more ? [...tracker.rows(), ...(await more())] : tracker.rows();
    const rows = all.filter((r) => !dir || r.direction === dir);
    rows.sort((a, b) => b.ageMs - a.ageMs);
    sendJson(res, 200, { count: rows.length, connections: rows });
  });
}
