import type { Command } from './command';

/** The waypoint role is specified by a later issue; until then the command says so plainly. */
export const command: Command = {
  name: 'waypoint',
  summary: 'waypoint proxy',
  help: () =>
    'usage: ztunnel-ts waypoint\n\nThe waypoint (HBONE in, L7 routing and policy for HTTP and gRPC, HBONE out) is not part of this release.\n' +
    'It reuses the node proxy\'s identity, HBONE server and pool; see ARCHITECTURE.md "Waypoint".\n',
  run: async (io) => {
    io.stderr.write('ztunnel-ts waypoint: the waypoint role is not available in this release (see ARCHITECTURE.md); use `ztunnel-ts node`.\n');
    return 2;
  },
};
