import type { Command } from './command';
import { describeKeys } from '../config/load';
import { NODE_KEYS } from '../config/keys-node';
import { loadNodeConfig } from '../config/node-config';
import { NodeApp } from '../app/node-app';
import { runService } from './lifecycle';

export const command: Command = {
  name: 'node',
  summary: 'node proxy',
  help: () =>
    'usage: ztunnel-ts node [--flags]\n\nThe node proxy (DaemonSet role). Every setting is an environment variable (ztunnel\'s names) or the matching flag.\n\n' +
    describeKeys(NODE_KEYS) +
    '\n',
  async run(io) {
    const { config } = loadNodeConfig(io.env, io.argv);
    let stopped!: () => void;
    const stoppedP = new Promise<void>((r) => (stopped = r));
    const app = new NodeApp({ config, onStopped: () => stopped() });
    return runService(io, app.logger, app, stoppedP);
  },
};
