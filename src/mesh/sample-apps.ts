import { createServer, type Server } from 'node:http';
import type { MeshApp } from './mesh-config';

export interface RunningApps {
  readonly count: number;
  close(): Promise<void>;
}

/**
 * The mesh's sample apps: one tiny HTTP server per app address that answers
 * "hello from <name> (you are <peer ip>)". The peer IP shows what the app really sees
 * (the inbound node proxy's dial), which makes the data path easy to follow.
 */
export async function startSampleApps(apps: readonly MeshApp[]): Promise<RunningApps> {
  const servers: Server[] = [];
  try {
    for (const app of apps) {
      const server = createServer((req, res) => {
        const body = `hello from ${app.name} (you are ${req.socket.remoteAddress})\n`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      server.keepAliveTimeout = 1000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(new Error(`sample app ${app.name}: cannot listen on ${app.listen.ip}:${app.listen.port}: ${err.message}`)));
        server.listen({ host: app.listen.ip, port: app.listen.port, exclusive: true }, () => resolve());
      });
      servers.push(server);
    }
  } catch (err) {
    await closeAll(servers);
    throw err;
  }
  return { count: servers.length, close: () => closeAll(servers) };
}

function closeAll(servers: Server[]): Promise<void> {
  return Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((r) => {
          s.closeAllConnections();
          s.close(() => r());
        }),
    ),
  ).then(() => undefined);
}
