import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshConfig, MeshNode, MeshWaypoint } from './mesh-config';
import { startSampleApps, type RunningApps } from './sample-apps';
import { logTail, startChild, stopChild, waitReady, type Child } from './processes';
import { startDevControlPlane, type DevControlPlane } from '../controlplane/dev-control-plane';
import { createLogger } from '../logging/logger';
import { LocalResolver } from './local-resolver';

export interface MeshRunnerOptions {
  readonly config: MeshConfig;
  /** dist/src/cli/main.js: children run `node <mainJs> ca|node`. */
  readonly mainJs: string;
  /** Where CA files, tokens, config and logs go; a fresh temp dir when empty (removed at stop). */
  readonly stateDir: string;
  readonly logLevel: string;
  /** LOG_FORMAT of the mesh's node proxies and CA (their log files); plain unless given. */
  readonly logFormat?: 'json' | 'plain';
  /** PATH (and nothing else) is passed through from the caller's environment. */
  readonly path: string;
  /** Progress lines for the user. */
  readonly out: (line: string) => void;
}

/**
 * Starts and stops a whole local mesh: the dev control plane (in this process: the CA and
 * delta xDS serving the mesh file's workloads, services and policies, watched) and one node
 * proxy per node as child processes (each with its own env: XDS_*, NODE_NAME, POD_*, CA_*,
 * AUTH_TOKEN, SOCKS5 and server addresses), plus the sample apps in this process. Children
 * are tracked by PID and stopped individually; the temp state dir is removed at stop.
 */
export class MeshRunner {
  private readonly children: Child[] = [];
  private apps: RunningApps | null = null;
  readonly stateDir: string;
  private readonly ownsDir: boolean;
  private stopped = false;
  private ca: DevControlPlane | null = null;
  private caLog: WriteStream | null = null;
  private caRootPath = '';
  private resolver: LocalResolver | null = null;

  constructor(private readonly opts: MeshRunnerOptions) {
    this.ownsDir = opts.stateDir === '';
    this.stateDir = opts.stateDir || mkdtempSync(join(tmpdir(), 'ztunnel-ts-mesh-'));
  }

  get localConfigPath(): string {
    return join(this.stateDir, 'local-config.yaml');
  }

  /** Everything up and ready, or throws naming what failed (with the child's last log lines). */
  async start(): Promise<void> {
    const { config, out } = this.opts;
    mkdirSync(join(this.stateDir, 'logs'), { recursive: true });
    mkdirSync(join(this.stateDir, 'tokens'), { recursive: true });
    writeFileSync(this.localConfigPath, config.localConfigYaml);
    const tokens = config.nodes.map((n) => ({ node: n.name, token: randomBytes(18).toString('base64url') }));
    // A waypoint asks for its own identity (no node, no impersonation), like a pod's service account token.
    const wpTokens = config.waypoints.map((w) => ({ w, token: randomBytes(18).toString('base64url') }));
    const tokensPath = join(this.stateDir, 'ca-tokens.yaml');
    writeFileSync(
      tokensPath,
      [
        ...tokens.map((t) => `- { token: "${t.token}", namespace: istio-system, serviceAccount: ztunnel, node: "${t.node}" }`),
        ...wpTokens.map((t) => `- { token: "${t.token}", namespace: "${t.w.namespace}", serviceAccount: "${t.w.serviceAccount}" }`),
      ].join('\n') + '\n',
      { mode: 0o600 },
    );
    for (const t of tokens) writeFileSync(join(this.stateDir, 'tokens', t.node), t.token, { mode: 0o600 });
    for (const t of wpTokens) writeFileSync(join(this.stateDir, 'tokens', `waypoint-${t.w.name}`), t.token, { mode: 0o600 });

    this.apps = await startSampleApps(config.apps);
    out(`started ${this.apps.count} sample apps`);
    await this.startCa(tokensPath);
    if (config.dns) {
      this.resolver = await LocalResolver.start(config.dns.upstream, config.dns.records);
      out(`local upstream resolver on ${config.dns.upstream.ip}:${config.dns.upstream.port} (udp+tcp, in this process): ${Object.keys(config.dns.records).join(', ')}`);
    }
    await Promise.all([...config.nodes.map((n) => this.startNode(n)), ...config.waypoints.map((w) => this.startWaypoint(w))]);
  }

  /** A `ztunnel-ts waypoint` child on its pod IP, its routes and policies in waypoint-<name>.yaml (watched). */
  private async startWaypoint(w: MeshWaypoint): Promise<void> {
    const { config } = this.opts;
    const ca = config.caListen;
    const cfg = join(this.stateDir, `waypoint-${w.name}.yaml`);
    writeFileSync(cfg, w.configYaml);
    const child = this.spawn(`waypoint-${w.name}`, ['waypoint'], {
      ...this.baseEnv(),
      WAYPOINT_NAME: w.name,
      POD_NAMESPACE: w.namespace,
      SERVICE_ACCOUNT: w.serviceAccount,
      INSTANCE_IP: w.ip,
      INBOUND_ADDR: `${w.ip}:15008`,
      // Workloads, services and policies from the control plane's xDS, as the node proxies get them.
      XDS_ADDRESS: `https://${ca.ip}:${ca.port}`,
      XDS_ROOT_CA: this.caRootPath,
      POD_NAME: `waypoint-${w.name}`,
      WAYPOINT_CONFIG_PATH: cfg,
      CA_ADDRESS: `https://${ca.ip}:${ca.port}`,
      CA_ROOT_CA: this.caRootPath,
      AUTH_TOKEN: join(this.stateDir, 'tokens', `waypoint-${w.name}`),
      TRUST_DOMAIN: config.trustDomain,
      ADMIN_ADDR: `${w.ip}:${w.ports.admin}`,
      STATS_ADDR: `${w.ip}:${w.ports.stats}`,
      READINESS_ADDR: `${w.ip}:${w.ports.readiness}`,
      CONNECTION_TERMINATION_DEADLINE: '2s',
      ...w.env,
    });
    const r = await waitReady(w.ip, w.ports.readiness, 30_000, () => child.proc.exitCode === null);
    if (!r.ready) throw new Error(`waypoint ${w.name} is not ready (last answer: ${r.last}; exit ${child.proc.exitCode}); log ${child.logPath}:\n${logTail(child)}`);
    this.opts.out(`waypoint ${w.namespace}/${w.name} ready on ${w.ip}:15008 (pid ${child.proc.pid}; routes and policies: ${cfg})`);
  }

  private baseEnv(): Record<string, string> {
    return { PATH: this.opts.path, LOG_LEVEL: this.opts.logLevel, LOG_FORMAT: this.opts.logFormat ?? 'plain' };
  }

  /**
   * Replaces the served file atomically (rename, as a ConfigMap update does): the control
   * plane pushes the difference to every node proxy, nothing restarts.
   */
  editLocalConfig(edit: (text: string) => string): void {
    const next = edit(readFileSync(this.localConfigPath, 'utf8'));
    const tmp = `${this.localConfigPath}.tmp`;
    writeFileSync(tmp, next);
    renameSync(tmp, this.localConfigPath);
  }

  /** The dev control plane runs in this process; its log goes to logs/ca.log. */
  private async startCa(tokensPath: string): Promise<void> {
    const { config } = this.opts;
    const ca = config.caListen;
    const logFile = createWriteStream(join(this.stateDir, 'logs', 'ca.log'), { flags: 'a' });
    this.caLog = logFile;
    const logger = createLogger({ level: 'info', format: 'json', destination: logFile });
    this.ca = await startDevControlPlane({
      dir: join(this.stateDir, 'ca'),
      listenAddr: { host: ca.ip, port: ca.port },
      tokensPath,
      trustedNodeAccounts: ['istio-system/ztunnel'],
      localXdsPath: this.localConfigPath,
      trustDomain: config.trustDomain,
      maxTtlMs: 24 * 3600 * 1000,
      serverSans: ['localhost', '127.0.0.1', ca.ip],
      logger,
    });
    this.caRootPath = this.ca.rootCertPath;
    this.opts.out(`dev control plane (CA + delta xDS of ${this.localConfigPath}) listening on ${this.ca.address} (in this process; log ${join(this.stateDir, 'logs', 'ca.log')})`);
  }

  private async startNode(n: MeshNode): Promise<void> {
    const { config } = this.opts;
    const ca = config.caListen;
    const child = this.spawn(n.name, ['node'], {
      ...this.baseEnv(),
      NODE_NAME: n.name,
      XDS_ADDRESS: `https://${ca.ip}:${ca.port}`,
      XDS_ROOT_CA: this.caRootPath,
      // The node id istiod checks against the token: the proxy's pod, its namespace and IP.
      POD_NAME: `ztunnel-${n.name}`,
      POD_NAMESPACE: 'istio-system',
      INSTANCE_IP: n.ip,
      CA_ADDRESS: `https://${ca.ip}:${ca.port}`,
      CA_ROOT_CA: this.caRootPath,
      AUTH_TOKEN: join(this.stateDir, 'tokens', n.name),
      SOCKS5_ADDR: `${n.ip}:${n.ports.socks5}`,
      ADMIN_ADDR: `${n.ip}:${n.ports.admin}`,
      STATS_ADDR: `${n.ip}:${n.ports.stats}`,
      READINESS_ADDR: `${n.ip}:${n.ports.readiness}`,
      CONNECTION_TERMINATION_DEADLINE: '2s',
      IPV6_ENABLED: 'false',
      // The DNS proxy on every workload IP of the node, forwarding to the mesh's own resolver.
      ...(config.dns ? { DNS_CAPTURE: 'true', DNS_PROXY_ADDR: `:${config.dns.port}`, DNS_UPSTREAMS: `${config.dns.upstream.ip}:${config.dns.upstream.port}` } : {}),
    });
    const r = await waitReady(n.ip, n.ports.readiness, 30_000, () => child.proc.exitCode === null);
    if (!r.ready) throw new Error(`node proxy ${n.name} is not ready (last answer: ${r.last}; exit ${child.proc.exitCode}); log ${child.logPath}:\n${logTail(child)}`);
    this.opts.out(`node proxy ${n.name} ready (pid ${child.proc.pid})`);
  }

  private spawn(name: string, args: string[], env: Record<string, string>): Child {
    const c = startChild(name, this.opts.mainJs, args, env, join(this.stateDir, 'logs', `${name}.log`));
    this.children.push(c);
    return c;
  }

  /** Children that exited on their own (a crash while the mesh runs). */
  deadChildren(): Child[] {
    return this.children.filter((c) => c.proc.exitCode !== null || c.proc.signalCode !== null);
  }

  pids(): { name: string; pid: number | undefined; log: string }[] {
    return this.children.map((c) => ({ name: c.name, pid: c.proc.pid, log: c.logPath }));
  }

  /** Stops node proxies first (they drain), then the CA, then the apps; removes a temp state dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.children.map((c) => stopChild(c)));
    await this.ca?.close();
    this.resolver?.close();
    this.caLog?.end();
    await this.apps?.close();
    if (this.ownsDir) rmSync(this.stateDir, { recursive: true, force: true });
  }
}
