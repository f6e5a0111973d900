import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { SocketAddr } from '../../../src/util/socket-addr';
import type { TestFn } from 'ava';
import { waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { get, type WaypointMesh } from './harness';

/** What the backend does with the next request: answer a status, reset the connection, or wait first. */
export type Behaviour = { status: number; delayMs?: number } | 'reset';

/**
 * An HTTP/1.1 app that fails on command: `script` is consumed one entry per request
 * (then `fallback` applies), so a test can make it flaky (503, 503, 200), reset
 * connections, or answer slowly. It counts requests and the bytes of each body, and
 * `stop()` closes the port so connections are refused.
 */
export class FailingBackend {
  readonly server: http.Server;
  script: Behaviour[] = [];
  fallback: Behaviour = { status: 200 };
  requests = 0;
  readonly bodies: number[] = [];
  /** The client port of each request's connection (which upstream connection carried it). */
  readonly ports: number[] = [];
  active = 0;
  maxActive = 0;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly host: string,
    readonly port: number,
    readonly name: string,
  ) {
    this.server = http.createServer((req, res) => {
      this.requests++;
      this.ports.push(req.socket.remotePort ?? 0);
      this.active++;
      this.maxActive = Math.max(this.maxActive, this.active);
      res.once('close', () => this.active--);
      const b = this.script.shift() ?? this.fallback;
      let size = 0;
      req.on('data', (c: Buffer) => (size += c.length));
      req.on('end', () => {
        this.bodies.push(size);
        if (b === 'reset') {
          req.socket.destroy();
          return;
        }
        const answer = (): void => {
          if (res.destroyed) return;
          res.writeHead(b.status, { 'content-type': 'text/plain', 'x-app': name });
          res.end(`${name} ${b.status}`);
        };
        if (b.delayMs) setTimeout(answer, b.delayMs);
        else answer();
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  start(): Promise<this> {
    return new Promise((resolve) => this.server.listen(this.port, this.host, () => resolve(this)));
  }

  /** Closes the port (new connections are refused) and drops open ones. */
  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.script = [];
    this.fallback = { status: 200 };
    this.requests = 0;
    this.bodies.length = 0;
    this.ports.length = 0;
    this.maxActive = 0;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

/** Replaces the waypoint's config and waits until it is applied (a rejected config fails the test with its errors). */
export async function applyL7(m: WaypointMesh, yaml: string): Promise<void> {
  const before = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
  const rejectedBefore = m.wpLogs.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('waypoint config rejected')).length;
  m.writeL7(yaml);
  await waitUntil(
    () => {
      const rejected = m.wpLogs.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('waypoint config rejected'));
      if (rejected.length > rejectedBefore) throw new Error(`config rejected: ${JSON.stringify(rejected.at(-1)?.['errors'])}`);
      return m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length > before;
    },
    5000,
    () => 'waypoint config applied',
  );
}

/** The admin server's JSON at `path` (/config_dump, /debug/explain?…). */
export async function adminJson(m: WaypointMesh, path: string): Promise<any> {
  const admin = m.wp.runtime.currentAddresses().admin as SocketAddr;
  return JSON.parse((await get({ ip: admin.ip, port: admin.port, family: 4 }, path)).text);
}

/** Access-log records since `from` (an index into requestLogs()). */
export function logsSince(m: WaypointMesh, from: number): Record<string, unknown>[] {
  return m.requestLogs().slice(from);
}

/** A VirtualService `name` for `host` with these http routes (YAML lines at 2 spaces, each starting `- `). */
export function virtualService(http: string, host = 'server', name = 'server'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${host}]
  http:
${http}`;
}

/** A VirtualService for `server` sending everything to `dest` (a Service short name) with the given http-route extras (YAML lines at 4 spaces). */
export function vsTo(dest: string, extra: string, host = 'server'): string {
  return virtualService(`  - route: [{ destination: { host: ${dest}, port: { number: 80 } } }]
${extra}`, host, 'vs');
}

/**
 * The traffic tests' setup: failing backends for server-v1 and server-v2, the mesh started
 * (with `extra` services), a forwarder to the `server` VIP, and the backends' counters reset
 * before each test. Returns the live handles (filled in by test.before).
 */
export function trafficMesh(test: TestFn, m: WaypointMesh, extra: Partial<LocalConfigDoc> = {}): { fwd: SocketAddr; v1: FailingBackend; v2: FailingBackend } {
  const h = {} as { fwd: SocketAddr; v1: FailingBackend; v2: FailingBackend };
  test.before(async () => {
    h.v1 = await new FailingBackend(m.V1, 8080, 'v1').start();
    h.v2 = await new FailingBackend(m.V2, 8080, 'v2').start();
    m.track(h.v1);
    m.track(h.v2);
    await m.start('', {}, extra);
    h.fwd = await m.forwarder({ host: m.VIP, port: 80 });
  });
  test.after.always(() => m.close());
  test.beforeEach(() => {
    h.v1.reset();
    h.v2.reset();
  });
  return h;
}
