import type { Command } from './command';

// Placeholder replaced by the owning work stream during this session.
export const command: Command = {
  name: 'mesh',
  summary: 'mesh',
  help: () => 'usage: ztunnel-ts mesh\n',
  run: async (io) => {
    io.stderr.write('ztunnel-ts mesh: not available yet\n');
    return 2;
  },
};
