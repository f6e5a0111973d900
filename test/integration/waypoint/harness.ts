import * as http from 'node:http';
import * as http2 from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadWaypointConfig } from '../../../src/config/waypoint-config';
import { startDevControlPlane, type DevControlPlane } from '../../../src/controlplane/dev-control-plane';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { WaypointApp } from '../../../src/waypoint/waypoint-app';
import { TestMesh, waitUntil, type LocalConfigDoc, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { socksConnect } from '../../helpers/socks-client';
import { parsePrometheusText, type ParsedMetrics } from '../../helpers/prom-text';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * A loopback mesh with a waypoint, all in this process: the dev CA, node-a (clients),
 * node-b (the apps), and the waypoint (its own certificate, from its own CA token, no
 * impersonation) on its own workload IP. Clients reach the mesh through node-a's SOCKS5
 * from their workload IP, via a local forwarder so any HTTP/gRPC client library can be
 * pointed at a plain host:port.
 */
export class WaypointMesh {
  readonly ip = loopbackBlock();
  readonly NODE_A = this.ip(1);
  readonly NODE_B = this.ip(2);
  readonly CLIENT = this.ip(10);
  readonly OTHER_CLIENT = this.ip(11);
  readonly V1 = this.ip(20);
  readonly V2 = this.ip(21);
  readonly WP = this.ip(30);
  readonly VIP = this.ip(100);
  readonly VIP_V1 = this.ip(101);
  readonly VIP_V2 = this.ip(102);
  readonly VIP_TCP = this.ip(103);
  readonly mesh = new TestMesh(['node-a', 'node-b']);
  readonly wpLogs = new LogCollector();
  readonly cfgDir = join(this.mesh.dir, 'l7');
  a!: TestNode;
  b!: TestNode;
  wp!: WaypointApp;
  /** With `start({ xds: true })`: the control plane the waypoint gets its state from over delta xDS. */
  cp: DevControlPlane | null = null;
  readonly cpLogs = new LogCollector();
  private readonly servers: { close(): void }[] = [];

  /** Workloads/services: `server` (v1 + v2) behind the waypoint, server-v1/-v2 per version, a TCP echo service. */
  doc(extra: Partial<LocalConfigDoc> = {}): LocalConfigDoc {
    const svc = (n: string): string => `default/${n}.default.svc.cluster.local`;
    // A fresh object per use: shared objects would be written as YAML aliases.
    const ports = (): Record<number, number> => ({ 80: 8080, 90: 9090, 50051: 50051 });
    return {
      workloads: [
        { name: 'client', ips: [this.CLIENT], node: 'node-a' },
        { name: 'other', ips: [this.OTHER_CLIENT], node: 'node-a' },
        { name: 'waypoint', ips: [this.WP], node: 'node-w' },
        { name: 'server-v1', ips: [this.V1], node: 'node-b', serviceAccount: 'server', authorizationPolicies: ['default/only-waypoint'], services: { [svc('server')]: ports(), [svc('server-v1')]: ports(), [svc('echo')]: { 7000: 7000 } } },
        { name: 'server-v2', ips: [this.V2], node: 'node-b', serviceAccount: 'server', authorizationPolicies: ['default/only-waypoint'], services: { [svc('server')]: ports(), [svc('server-v2')]: ports() } },
        ...(extra.workloads ?? []),
      ],
      services: [
        { name: 'server', hostname: 'server.default.svc.cluster.local', vip: this.VIP, ports: ports(), waypoint: this.WP },
        { name: 'server-v1', hostname: 'server-v1.default.svc.cluster.local', vip: this.VIP_V1, ports: ports() },
        { name: 'server-v2', hostname: 'server-v2.default.svc.cluster.local', vip: this.VIP_V2, ports: ports() },
        { name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: this.VIP_TCP, ports: { 7000: 7000 }, waypoint: this.WP },
        ...(extra.services ?? []),
      ],
      policies: [
        // The apps accept only the waypoint's identity: direct traffic is denied, via the waypoint allowed.
        { name: 'only-waypoint', namespace: 'default', scope: 'WorkloadSelector', action: 'Allow', rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/waypoint' }] }]]] },
        ...(extra.policies ?? []),
      ],
    };
  }

  /** Replaces the waypoint's routes/policies file (atomically, as a ConfigMap update does). */
  writeL7(yaml: string): void {
    mkdirSync(this.cfgDir, { recursive: true });
    const f = join(this.cfgDir, 'l7.yaml');
    writeFileSync(`${f}.tmp`, yaml);
    renameSync(`${f}.tmp`, f);
  }

  /**
   * `env`: extra waypoint settings (e.g. WAYPOINT_FOR); `extra`: more workloads/services/policies;
   * `xds`: the waypoint learns them over delta xDS from a dev control plane serving the mesh's
   * config file (no LOCAL_XDS_PATH), as in a cluster.
   */
  async start(l7 = '', env: Record<string, string> = {}, extra: Partial<LocalConfigDoc> = {}, opts: { xds?: boolean } = {}): Promise<void> {
    this.mesh.writeConfig(this.doc(extra));
    this.writeL7(l7);
    const token = `wp-token-${Math.random().toString(36).slice(2)}`;
    const tokenFile = join(this.mesh.dir, 'wp-token');
    writeFileSync(tokenFile, token);
    const caller = { token, namespace: 'default', serviceAccount: 'waypoint', node: '' };
    const ca = await this.mesh.startCa([caller]);
    this.a = await this.mesh.startNode('node-a', { SOCKS5_ADDR: `${this.NODE_A}:0` });
    this.b = await this.mesh.startNode('node-b', {});
    let source: Record<string, string> = { LOCAL_XDS_PATH: this.mesh.xdsPath };
    if (opts.xds) {
      this.cp = await startDevControlPlane({
        dir: join(this.mesh.dir, 'cp'),
        listenAddr: { host: '127.0.0.1', port: 0 },
        tokensPath: null,
        callers: [caller],
        trustedNodeAccounts: [],
        localXdsPath: this.mesh.xdsPath,
        trustDomain: 'cluster.local',
        maxTtlMs: 3600_000,
        serverSans: ['127.0.0.1'],
        logger: createLogger({ level: 'debug', format: 'json', destination: this.cpLogs }),
        reloadDebounceMs: 20,
      });
      source = { XDS_ADDRESS: `https://${this.cp.address}`, XDS_ROOT_CA: this.cp.rootCertPath, POD_NAME: 'waypoint-0' };
    }
    const { config } = loadWaypointConfig(
      {
        INBOUND_ADDR: `${this.WP}:15008`,
        INSTANCE_IP: this.WP,
        ...source,
        WAYPOINT_CONFIG_PATH: this.cfgDir,
        CA_ADDRESS: `https://${ca.address}`,
        CA_ROOT_CA: ca.rootCertPath,
        AUTH_TOKEN: tokenFile,
        ADMIN_ADDR: '127.0.0.1:0',
        STATS_ADDR: '127.0.0.1:0',
        READINESS_ADDR: '127.0.0.1:0',
        LOG_LEVEL: 'debug',
        PROTOCOL_DETECTION_TIMEOUT: '300ms',
        ...env,
      },
      [],
    );
    let seed = 1;
    // A deterministic [0,1) sequence (weighted splits are then exact, not statistical).
    const random = (): number => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    this.wp = new WaypointApp({ config, logDestination: this.wpLogs, processMetrics: false, random });
    await this.wp.start();
    await waitUntil(() => this.wp.runtime.readiness.isReady(), 20_000, () => `waypoint not ready: ${this.wp.runtime.readiness.pendingTasks().join(', ')}`);
  }

  /**
   * A local port that carries each connection to `target` through node-a's SOCKS5 from
   * `from` (a client workload IP): what a captured app's connection does.
   */
  async forwarder(target: { host: string; port: number }, from = this.CLIENT): Promise<SocketAddr> {
    const sockets = new Set<Socket>();
    const server: Server = createServer({ allowHalfOpen: true }, (c) => {
      sockets.add(c);
      c.on('close', () => sockets.delete(c));
      c.on('error', () => c.destroy());
      c.pause();
      socksConnect(this.a.listener('socks5'), target, from).then(
        (up) => {
          sockets.add(up);
          up.on('error', () => c.destroy());
          c.on('error', () => up.destroy());
          up.on('close', () => c.destroy());
          c.pipe(up);
          up.pipe(c);
          c.resume();
        },
        () => c.destroy(),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.servers.push({
      close: () => {
        server.close();
        for (const s of sockets) s.destroy();
      },
    });
    const a = server.address() as { port: number };
    return { ip: '127.0.0.1', port: a.port, family: 4 };
  }

  track(s: { close(): void }): void {
    this.servers.push(s);
  }

  async wpMetrics(): Promise<ParsedMetrics> {
    return parsePrometheusText(await this.wp.registry.metrics());
  }

  requestLogs(): Record<string, unknown>[] {
    return this.wpLogs.find((l) => l['scope'] === 'access' && l['msg'] === 'request complete');
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    await this.wp?.close().catch(() => undefined);
    this.cp?.destroy();
    await this.mesh.close();
  }
}

/** An HTTP/1.1 app answering JSON {app, method, url, headers}; /slow waits 1.5 s; /ws accepts a WebSocket-style upgrade and echoes. */
export function startHttpApp(host: string, port: number, name: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (): void => {
        const body = JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), peer: req.socket.remoteAddress });
        res.writeHead(200, { 'content-type': 'application/json', 'x-app': name, 'x-remove-me': 'yes' });
        res.end(body);
      };
      if (req.url?.startsWith('/slow')) setTimeout(reply, 1500);
      else reply();
    });
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers['upgrade']}\r\nconnection: Upgrade\r\nx-app: ${name}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

/** An h2c app (HTTP/2 prior knowledge) answering JSON {app, method, path, headers}. */
export function startH2App(host: string, port: number, name: string): Promise<http2.Http2Server> {
  const server = http2.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
      res.end(JSON.stringify({ app: name, method: req.method, path: req.url, headers: req.headers }));
    });
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

/** One HTTP/1.1 request over a fresh connection; resolves status, headers, parsed JSON body (or text). */
export function get(addr: SocketAddr, path: string, headers: Record<string, string> = {}, opts: { method?: string; agent?: http.Agent; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: addr.ip, port: addr.port, path, method: opts.method ?? 'GET', headers: { host: 'server.default.svc.cluster.local', ...headers }, agent: opts.agent ?? false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
