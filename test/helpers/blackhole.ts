import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { makeSocketAddr, type SocketAddr } from '../../src/util/socket-addr';

/**
 * A listener that never accepts, with its accept queue filled: further SYNs are dropped
 * by the kernel (no SYN-ACK, no RST), which is what a NetworkPolicy drop looks like, without
 * a network namespace. Node always accepts, so the listener is a python3 child (killed by
 * PID in teardown). `port` 0 picks a free one.
 */
export async function blackhole(t: ExecutionContext, host = '127.0.0.1', port = 0): Promise<SocketAddr> {
  const script = `import socket,time\ns=socket.socket()\ns.bind((${JSON.stringify(host)},${port}))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)`;
  const child = spawn('/usr/bin/python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.pid) process.kill(child.pid, 'SIGKILL');
  });
  const bound = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  const fillers: net.Socket[] = [];
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  for (let i = 0; i < 8; i++) {
    const s = net.connect({ host, port: bound });
    s.on('error', () => undefined);
    fillers.push(s);
    const ok = await Promise.race([new Promise((r) => s.once('connect', () => r(true))), new Promise((r) => setTimeout(() => r(false), 300))]);
    if (!ok) return makeSocketAddr(host, bound);
  }
  throw new Error('could not saturate the accept queue');
}
