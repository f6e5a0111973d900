import type { Command } from './command';
import { describeKeys } from '../config/load';
import { WAYPOINT_KEYS } from '../config/keys-waypoint';
import { loadWaypointConfig } from '../config/waypoint-config';
import { WaypointApp } from '../waypoint/waypoint-app';
import { runService } from './lifecycle';

export const command: Command = {
  name: 'waypoint',
  summary: 'waypoint proxy',
  help: () =>
    'usage: ztunnel-ts waypoint [--flags]\n\nThe waypoint (one per service account, like istio-waypoint): HBONE in on 15008 with its own identity,\n' +
    'HTTP/1.1, h2c and gRPC routing (HTTPRoute, GRPCRoute) and L7 AuthorizationPolicy from WAYPOINT_CONFIG_PATH,\n' +
    'request metrics and access logs, HBONE out to the chosen endpoint. TCP services are proxied as TCP.\n\n' +
    describeKeys(WAYPOINT_KEYS) +
    '\n',
  async run(io) {
    const { config } = loadWaypointConfig(io.env, io.argv);
    let stopped!: () => void;
    const stoppedP = new Promise<void>((r) => (stopped = r));
    const app = new WaypointApp({ config, onStopped: () => stopped() });
    return runService(io, app.logger, app, stoppedP);
  },
};
