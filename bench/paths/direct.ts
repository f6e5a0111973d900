import type { PathDef } from './types';
import { benchAddr } from './addr';

/**
 * The baseline: the load generator talks straight to the bench server. Every path uses
 * its own source IPs, so one path's TIME_WAIT sockets never slow another path's connect().
 */
export const direct: PathDef = {
  id: 'direct',
  available: async () => ({ ok: true, version: `node ${process.version}` }),
  async start(ctx) {
    const server = await ctx.server.listen(benchAddr(0, 3));
    return { id: 'direct', entry: { first: server, localAddress: benchAddr(0, 9) }, pids: () => [], metricsUrls: [], describe: `client → server ${server.host}:${server.port}`, stop: async () => undefined };
  },
};
