import type { Command } from './command';

// Placeholder replaced by the owning work stream during this session.
export const command: Command = {
  name: 'explain',
  summary: 'explain',
  help: () => 'usage: ztunnel-ts explain\n',
  run: async (io) => {
    io.stderr.write('ztunnel-ts explain: not available yet\n');
    return 2;
  },
};
