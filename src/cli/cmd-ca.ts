import type { Command } from './command';

// Placeholder replaced by the owning work stream during this session.
export const command: Command = {
  name: 'ca',
  summary: 'ca',
  help: () => 'usage: ztunnel-ts ca\n',
  run: async (io) => {
    io.stderr.write('ztunnel-ts ca: not available yet\n');
    return 2;
  },
};
