import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startDevCa, type DevCa } from '../../src/ca/dev-ca';
import { loadNodeConfig } from '../../src/config/node-config';
import { NodeApp } from '../../src/app/node-app';
import type { RuntimeAddresses } from '../../src/app/runtime';
import { createLogger } from '../../src/logging/logger';
import { LogCollector } from './log-collector';
import type { SocketAddr } from '../../src/util/socket-addr';
import { parsePrometheusText, type ParsedMetrics } from './prom-text';
import { httpRequest } from './http';

/** A workload in ztunnel's local-config format (only what the tests use). */
export interface LocalWorkload {
  name: string;
  ips: string[];
  node: string;
  serviceAccount?: string;
  namespace?: string;
  protocol?: 'HBONE' | 'TCP';
  authorizationPolicies?: string[];
  services?: Record<string, Record<number, number>>;
  /** IP of this workload's waypoint (workload-addressed traffic goes through it). */
  waypoint?: string;
  applicationTunnel?: { protocol: 'NONE' | 'PROXY'; port?: number };
}

export interface LocalConfigDoc {
  workloads: LocalWorkload[];
  /** `waypoint`: an IP, or a waypoint Service by namespace and hostname. */
  services?: { name: string; hostname: string; vip: string; ports: Record<number, number>; namespace?: string; waypoint?: string | { namespace: string; hostname: string } }[];
  policies?: Record<string, unknown>[];
}

/** Renders the local config file every node reads (ztunnel's format, camelCase). */
export function renderLocalConfig(doc: LocalConfigDoc): string {
  return stringify({
    workloads: doc.workloads.map((w) => ({
      uid: `cluster1//v1/Pod/${w.namespace ?? 'default'}/${w.name}`,
      name: w.name,
      namespace: w.namespace ?? 'default',
      serviceAccount: w.serviceAccount ?? w.name,
      trustDomain: 'cluster.local',
      workloadIps: w.ips,
      protocol: w.protocol ?? 'HBONE',
      node: w.node,
      network: '',
      canonicalName: `${w.name}-app`,
      canonicalRevision: 'v1',
      workloadName: `${w.name}-deploy`,
      workloadType: 'deployment',
      clusterId: 'cluster1',
      authorizationPolicies: w.authorizationPolicies ?? [],
      services: w.services ?? {},
      ...(w.waypoint ? { waypoint: { destination: `/${w.waypoint}`, hboneMtlsPort: 15008 } } : {}),
      ...(w.applicationTunnel ? { applicationTunnel: w.applicationTunnel } : {}),
    })),
    services: (doc.services ?? []).map((s) => ({
      name: s.name,
      namespace: s.namespace ?? 'default',
      hostname: s.hostname,
      vips: [`/${s.vip}`],
      ports: s.ports,
      ...(s.waypoint ? { waypoint: { destination: typeof s.waypoint === 'string' ? `/${s.waypoint}` : s.waypoint, hboneMtlsPort: 15008 } } : {}),
    })),
    policies: doc.policies ?? [],
  });
}

/** The error line Telemetry writes when a connection is recorded a second time. */
export const RECORDED_TWICE = 'internal: connection recorded twice (ignored)';

export interface TestNode {
  readonly name: string;
  readonly app: NodeApp;
  readonly logs: LogCollector;
  readonly addrs: RuntimeAddresses;
  /** Bound address of a listener by name (and workload IP for per-workload ones). */
  listener(name: string, ip?: string): SocketAddr;
  /** /metrics of the running node (every thread's families); after close, the main thread's registry. */
  metrics(): Promise<ParsedMetrics>;
  /** Live proxied connections on every thread (/debug/connections). */
  liveConnections(): Promise<number>;
  access(msg: string): Record<string, unknown>[];
  /** Connections whose owner recorded them more than once (each logs one error line). */
  recordedTwice(): number;
  close(): Promise<void>;
}

/**
 * A test mesh in one process: an in-process dev CA, a LOCAL_XDS_PATH file, and NodeApp
 * instances (each with its own registry, LogCollector and loopback addresses). Everything
 * binds loopback; servers use port 0 where the port does not matter.
 */
export class TestMesh {
  readonly dir = mkdtempSync(join(tmpdir(), 'zt-proxy-test-'));
  readonly xdsPath = join(this.dir, 'local.yaml');
  ca: DevCa | null = null;
  private readonly nodes: TestNode[] = [];
  private readonly tokens = new Map<string, string>();

  constructor(readonly nodeNames: readonly string[]) {
    for (const n of nodeNames) this.tokens.set(n, `token-${n}-${Math.random().toString(36).slice(2)}`);
  }

  /** Writes the config atomically (rename), as a ConfigMap update does. */
  writeConfig(doc: LocalConfigDoc): void {
    const tmp = `${this.xdsPath}.tmp`;
    writeFileSync(tmp, renderLocalConfig(doc));
    renameSync(tmp, this.xdsPath);
  }

  /** `extraCallers`: more CA tokens (e.g. a waypoint's own service account, which asks without impersonation). */
  async startCa(extraCallers: { token: string; namespace: string; serviceAccount: string; node: string }[] = []): Promise<DevCa> {
    this.ca = await startDevCa({
      dir: join(this.dir, 'ca'),
      listenAddr: { host: '127.0.0.1', port: 0 },
      tokensPath: null,
      callers: [...[...this.tokens].map(([node, token]) => ({ token, namespace: 'istio-system', serviceAccount: 'ztunnel', node })), ...extraCallers],
      trustedNodeAccounts: ['istio-system/ztunnel'],
      localXdsPath: this.xdsPath,
      trustDomain: 'cluster.local',
      maxTtlMs: 3600_000,
      serverSans: ['127.0.0.1', 'localhost'],
      logger: createLogger({ level: 'warn', format: 'json', destination: new LogCollector() }),
    });
    return this.ca;
  }

  /** Stops the CA (its address then refuses connections); nodes keep the certificates they have. */
  async stopCa(): Promise<void> {
    await this.ca?.close();
  }

  /**
   * The environment a node of this mesh runs with (in process here, or as a child process).
   * Without a started CA, `env` must name CA_ADDRESS and CA_ROOT_CA.
   */
  nodeEnv(name: string, env: Record<string, string> = {}): Record<string, string> {
    if (!this.ca && !(env['CA_ADDRESS'] && env['CA_ROOT_CA'])) throw new Error('start the CA first (or pass CA_ADDRESS and CA_ROOT_CA)');
    return {
      NODE_NAME: name,
      LOCAL_XDS_PATH: this.xdsPath,
      ...(this.ca ? { CA_ADDRESS: `https://${this.ca.address}`, CA_ROOT_CA: this.ca.rootCertPath } : {}),
      AUTH_TOKEN: this.tokens.get(name) ?? '',
      ADMIN_ADDR: '127.0.0.1:0',
      STATS_ADDR: '127.0.0.1:0',
      READINESS_ADDR: '127.0.0.1:0',
      LOG_LEVEL: 'debug',
      IPV6_ENABLED: 'false',
      ...env,
    };
  }

  /** Starts a node and waits until it is ready, unless `waitReady` is false (a node whose CA is down). */
  async startNode(name: string, env: Record<string, string> = {}, opts: { waitReady?: boolean } = {}): Promise<TestNode> {
    const node = await startTestNode(name, this.nodeEnv(name, env), opts);
    this.nodes.push(node);
    return node;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.app.close().catch(() => undefined)));
    await this.ca?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts one NodeApp on loopback (servers on port 0, debug logs collected) and waits until it
 * is ready unless `waitReady` is false. `env` adds to (and overrides) those defaults.
 */
export async function startTestNode(name: string, env: Record<string, string>, opts: { waitReady?: boolean } = {}): Promise<TestNode> {
  const { config } = loadNodeConfig(
    { NODE_NAME: name, ADMIN_ADDR: '127.0.0.1:0', STATS_ADDR: '127.0.0.1:0', READINESS_ADDR: '127.0.0.1:0', LOG_LEVEL: 'debug', IPV6_ENABLED: 'false', ...env },
    [],
  );
  const logs = new LogCollector();
  const app = new NodeApp({ config, logDestination: logs, processMetrics: false });
  const addrs = await app.start();
  if (opts.waitReady !== false) await waitUntil(() => app.runtime.readiness.isReady(), 20_000, () => `${name} not ready: ${app.runtime.readiness.pendingTasks().join(', ')}`);
  return {
    name,
    app,
    logs,
    addrs,
    listener(lname, ip) {
      const l = app.runtime.currentAddresses().listeners.find((x) => x.name === lname && (ip === undefined || x.address.ip === ip));
      if (!l) throw new Error(`${name}: no ${lname} listener${ip ? ` on ${ip}` : ''}`);
      return l.address;
    },
    // The stats server's /metrics (with worker threads, every thread's families merged), else the registry.
    metrics: async () => {
      // The stats server is gone after close (and so are the worker threads' registries).
      const body = addrs.stats ? await httpRequest(addrs.stats, '/metrics').then((r) => r.body, () => null) : null;
      return parsePrometheusText(body ?? (await app.registry.metrics()));
    },
    liveConnections: async () => (JSON.parse((await httpRequest(addrs.admin!, '/debug/connections')).body) as { count: number }).count,
    access: (msg) => logs.find((l) => l['scope'] === 'access' && l['msg'] === msg),
    recordedTwice: () => logs.find((l) => l['msg'] === RECORDED_TWICE).length,
    close: () => app.close(),
  };
}

/** Polls `cond` every 20ms until true; throws `what()` after `timeoutMs`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
