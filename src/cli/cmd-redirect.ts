import type { Command } from './command';

// Placeholder replaced by the owning work stream during this session.
export const command: Command = {
  name: 'redirect',
  summary: 'redirect',
  help: () => 'usage: ztunnel-ts redirect\n',
  run: async (io) => {
    io.stderr.write('ztunnel-ts redirect: not available yet\n');
    return 2;
  },
};
