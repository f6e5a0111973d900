import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevControlPlane, type DevControlPlane } from '../../../src/controlplane/dev-control-plane';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { renderLocalConfig, startTestNode, type LocalConfigDoc, type TestNode } from '../../helpers/node-harness';

export interface XdsNode extends TestNode {
  /** The `xds` section of /config_dump. */
  xdsDump(): XdsDump;
}

export interface XdsTypeDump {
  version: string;
  nonce: string;
  resources: number;
  responses: number;
  lastAck: { nonce: string } | null;
  lastNack: { nonce: string; error: string } | null;
}

export interface XdsAttemptDump {
  connection: number;
  startedAtMs: number;
  endedAtMs: number | null;
  termination: string | null;
  waitMs: number | null;
}

export interface XdsDump {
  address: string;
  state: string;
  connectionId: number;
  retryDelayMs: number;
  lastError: { reason: string; message: string } | null;
  awaitingFirstAck: string[];
  attempts: XdsAttemptDump[];
  pendingOnDemand: string[];
  types: Record<string, XdsTypeDump>;
}

/**
 * A mesh whose node proxies learn everything over delta xDS from an in-process dev control
 * plane (real gRPC over TLS on loopback). The control plane serves `xdsPath`; tests edit it
 * and watch the pushes arrive.
 */
export class XdsMesh {
  readonly dir = mkdtempSync(join(tmpdir(), 'zt-xds-test-'));
  readonly xdsPath = join(this.dir, 'served.yaml');
  cp: DevControlPlane | null = null;
  private port = 0;
  private readonly nodes: XdsNode[] = [];
  readonly tokens = new Map<string, string>();
  readonly cpLogs = new LogCollector();

  constructor(readonly nodeNames: readonly string[]) {
    for (const n of nodeNames) this.tokens.set(n, `token-${n}-${Math.random().toString(36).slice(2)}`);
  }

  /** Writes the served file atomically (rename), as a ConfigMap update does. */
  writeConfig(doc: LocalConfigDoc): void {
    this.writeRaw(renderLocalConfig(doc));
  }

  writeRaw(text: string): void {
    const tmp = `${this.xdsPath}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.xdsPath);
  }

  /** Starts (or restarts, on the same port and root) the dev control plane. */
  async startControlPlane(): Promise<DevControlPlane> {
    this.cp = await startDevControlPlane({
      dir: join(this.dir, 'ca'),
      listenAddr: { host: '127.0.0.1', port: this.port },
      tokensPath: null,
      callers: [...this.tokens].map(([node, token]) => ({ token, namespace: 'istio-system', serviceAccount: 'ztunnel', node })),
      trustedNodeAccounts: ['istio-system/ztunnel'],
      localXdsPath: this.xdsPath,
      trustDomain: 'cluster.local',
      maxTtlMs: 3600_000,
      serverSans: ['127.0.0.1', 'localhost'],
      logger: createLogger({ level: 'debug', format: 'json', destination: this.cpLogs }),
      reloadDebounceMs: 20,
    });
    this.port = Number(this.cp.address.slice(this.cp.address.lastIndexOf(':') + 1));
    return this.cp;
  }

  get address(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async stopControlPlane(): Promise<void> {
    this.cp?.destroy();
    this.cp = null;
  }

  /** Picks the control plane's port before it runs (nodes that start first). */
  reservePort(port: number): void {
    this.port = port;
  }

  async startNode(name: string, env: Record<string, string> = {}, opts: { waitReady?: boolean } = {}): Promise<XdsNode> {
    const root = join(this.dir, 'ca', 'root-cert.pem');
    const base = await startTestNode(
      name,
      {
        XDS_ADDRESS: this.address,
        XDS_ROOT_CA: root,
        CA_ADDRESS: this.address,
        CA_ROOT_CA: root,
        AUTH_TOKEN: this.tokens.get(name) ?? '',
        POD_NAME: `ztunnel-${name}`,
        POD_NAMESPACE: 'istio-system',
        INSTANCE_IP: '127.0.0.1',
        ...env,
      },
      opts,
    );
    const node: XdsNode = { ...base, xdsDump: () => base.app.xds!.dump() as XdsDump };
    this.nodes.push(node);
    return node;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.app.close().catch(() => undefined)));
    // Tests need no graceful end; destroy() never waits on a peer.
    this.cp?.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
