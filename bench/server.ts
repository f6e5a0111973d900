/**
 * The bench server, a child process of the harness so that serving never shares an event
 * loop with the load generator or the harness. Each accepted connection announces its mode
 * in its first byte: 'S' = sink (count bytes, never answer), 'E' = echo.
 */
import net from 'node:net';
import { serveRpc } from './lib/ipc';

const MODE_SINK = 0x53; // 'S'
const MODE_ECHO = 0x45; // 'E'

interface ServerState {
  sinkBytes: number;
  open: number;
  accepted: number;
  readonly servers: net.Server[];
}

const state: ServerState = { sinkBytes: 0, open: 0, accepted: 0, servers: [] };

function echo(sock: net.Socket, first: Buffer): void {
  const onData = (d: Buffer): void => {
    if (!sock.write(d)) {
      sock.pause();
      sock.once('drain', () => sock.resume());
    }
  };
  if (first.length > 0) onData(first);
  sock.on('data', onData);
}

function sink(sock: net.Socket, first: Buffer): void {
  state.sinkBytes += first.length;
  sock.on('data', (d: Buffer) => {
    state.sinkBytes += d.length;
  });
}

function onConnection(sock: net.Socket): void {
  state.open++;
  state.accepted++;
  sock.setNoDelay(true);
  sock.once('close', () => state.open--);
  sock.on('error', () => sock.destroy());
  sock.once('data', (d: Buffer) => {
    const mode = d[0];
    const rest = d.subarray(1);
    if (mode === MODE_SINK) sink(sock, rest);
    else if (mode === MODE_ECHO) echo(sock, rest);
    else sock.destroy();
  });
}

serveRpc({
  listen: (args: { host: string; port?: number }) =>
    new Promise<{ port: number }>((resolve, reject) => {
      const s = net.createServer({ noDelay: true }, onConnection);
      s.once('error', reject);
      s.listen({ host: args.host, port: args.port ?? 0, backlog: 4096 }, () => {
        state.servers.push(s);
        resolve({ port: (s.address() as net.AddressInfo).port });
      });
    }),
  /** Sink byte counter with a monotonic timestamp taken in this process. */
  count: () => ({ bytes: state.sinkBytes, atMs: performance.now() }),
  conns: () => ({ open: state.open, accepted: state.accepted }),
});
