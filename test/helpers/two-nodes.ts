import type { ExecutionContext } from 'ava';
import type { Socket } from 'node:net';
import { loopbackBlock } from './loopback';
import { startEchoServer, type EchoServer } from './echo-server';
import { TestMesh, type TestNode } from './node-harness';

export interface TwoNodes extends MeshOfTwo {
  readonly a: TestNode;
  readonly b: TestNode;
}

export interface MeshOfTwo {
  /** This mesh's loopback block: client workload ip(10) on node-a, server workload ip(20) on node-b. */
  readonly ip: (host: number) => string;
  readonly mesh: TestMesh;
  /** The server workload's app on ip(20):8080. */
  readonly app: EchoServer;
}

/** The config and CA of a two-node mesh (workload `client` on node-a, `server` on node-b), no app, no node. */
export async function startConfigOfTwo(t: ExecutionContext): Promise<{ ip: (host: number) => string; mesh: TestMesh }> {
  const ip = loopbackBlock();
  const mesh = new TestMesh(['node-a', 'node-b']);
  t.teardown(() => mesh.close());
  mesh.writeConfig({
    workloads: [
      { name: 'client', ips: [ip(10)], node: 'node-a' },
      { name: 'server', ips: [ip(20)], node: 'node-b' },
    ],
  });
  await mesh.startCa();
  return { ip, mesh };
}

/**
 * The config, CA and server app of a two-node mesh (workload `client` on node-a, `server`
 * on node-b); the caller starts the nodes, in process or as child processes. The app
 * echoes unless `onAppSocket` is given.
 */
export async function startMeshOfTwo(t: ExecutionContext, onAppSocket?: (s: Socket) => void): Promise<MeshOfTwo> {
  const { ip, mesh } = await startConfigOfTwo(t);
  const app = await startEchoServer(ip(20), 8080, onAppSocket);
  t.teardown(() => app.close());
  return { ip, mesh, app };
}

/** The smallest real mesh: startMeshOfTwo with both nodes as in-process NodeApps (node-a has SOCKS5 on ip(1)). */
export async function startTwoNodes(
  t: ExecutionContext,
  env: { a?: Record<string, string>; b?: Record<string, string> } = {},
  onAppSocket?: (s: Socket) => void,
): Promise<TwoNodes> {
  const { ip, mesh, app } = await startMeshOfTwo(t, onAppSocket);
  const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${ip(1)}:0`, ...env.a });
  const b = await mesh.startNode('node-b', { ...env.b });
  return { ip, mesh, a, b, app };
}

/**
 * How a socket's peer ended it, exactly: 'EOF' for a FIN (an 'end' event), else the error
 * code (ECONNRESET for an RST). Reads everything meanwhile; rejects if nothing happens in time.
 */
export function endOf(socket: Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket neither ended nor errored after ${timeoutMs}ms`)), timeoutMs);
    const done = (how: string): void => {
      clearTimeout(timer);
      resolve(how);
    };
    socket.once('end', () => done('EOF'));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    socket.once('close', () => done('closed without FIN or error'));
    socket.resume();
  });
}
