import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Registry } from 'prom-client';
import { startDevCa, type DevCa, type DevCaOptions } from '../../../src/ca/dev-ca';
import type { Caller } from '../../../src/ca/authn';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createIdentityManager, type IdentityConfig } from '../../../src/identity/create';
import type { CertManager } from '../../../src/identity/cert-manager';
import { IstioCaClient, type CaClient, type CaRequest, type CaResponse } from '../../../src/identity/ca-client';
import type { Clock } from '../../../src/util/clock';
import type { Logger } from 'pino';
import type { CsrBundle } from '../../../src/identity/csr';
import type { SpiffeId } from '../../../src/identity/spiffe';

/** Callers of the test CA: a node proxy on node-a, an app on node-a, an untrusted pod. */
export const CALLERS: readonly Caller[] = [
  { token: 'node-a-token', namespace: 'istio-system', serviceAccount: 'ztunnel', node: 'node-a' },
  { token: 'node-b-token', namespace: 'istio-system', serviceAccount: 'ztunnel', node: 'node-b' },
  { token: 'app-token', namespace: 'default', serviceAccount: 'app', node: 'node-a' },
  { token: 'rogue-token', namespace: 'default', serviceAccount: 'rogue', node: 'node-a' },
];

/** Workloads: default/app and default/db on node-a, default/other on node-b. */
export function localConfigYaml(extraOnNodeA: ReadonlyArray<{ ns: string; sa: string }> = []): string {
  const w = (i: number, ns: string, sa: string, node: string): string =>
    `  - uid: cluster1//v1/pod/${ns}/${sa}-${i}\n    name: ${sa}-${i}\n    namespace: ${ns}\n    serviceAccount: ${sa}\n    trustDomain: cluster.local\n    node: ${node}\n    workloadIps: ["10.0.${Math.floor(i / 250)}.${(i % 250) + 1}"]\n    protocol: HBONE\n`;
  const rows = [w(0, 'default', 'app', 'node-a'), w(1, 'default', 'db', 'node-a'), w(2, 'default', 'other', 'node-b')];
  extraOnNodeA.forEach((e, i) => rows.push(w(10 + i, e.ns, e.sa, 'node-a')));
  return `workloads:\n${rows.join('')}`;
}

export interface Harness {
  readonly dir: string;
  readonly caLogs: LogCollector;
  readonly caLogger: Logger;
  readonly localXdsPath: string;
  ca: DevCa;
  /** Starts (again) a CA on `dir`; port 0 unless given. */
  startCa(extra?: Partial<DevCaOptions>): Promise<DevCa>;
}

export async function harness(t: ExecutionContext, extra: Partial<DevCaOptions> = {}, extraWorkloads: ReadonlyArray<{ ns: string; sa: string }> = []): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ztunnel-ts-ca-'));
  const localXdsPath = join(dir, 'local.yaml');
  writeFileSync(localXdsPath, localConfigYaml(extraWorkloads));
  const caLogs = new LogCollector();
  const caLogger = createLogger({ level: 'info', format: 'json', destination: caLogs });
  const started: DevCa[] = [];
  const h: Harness = {
    dir,
    caLogs,
    caLogger,
    localXdsPath,
    ca: undefined as unknown as DevCa,
    async startCa(more = {}) {
      const ca = await startDevCa({
        dir: join(dir, 'ca'),
        listenAddr: { host: '127.0.0.1', port: 0 },
        tokensPath: null,
        callers: CALLERS,
        trustedNodeAccounts: ['istio-system/ztunnel'],
        localXdsPath,
        trustDomain: 'cluster.local',
        maxTtlMs: 48 * 3600_000,
        serverSans: ['localhost', '127.0.0.1'],
        logger: caLogger,
        ...extra,
        ...more,
      });
      started.push(ca);
      return ca;
    },
  };
  h.ca = await h.startCa();
  t.teardown(() => {
    for (const ca of started) ca.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  return h;
}

/** IDENTITY_KEYS values pointing at a dev CA. */
export function identityConfig(ca: DevCa, over: Partial<IdentityConfig> = {}): IdentityConfig {
  return {
    caAddress: `https://${ca.address}`,
    caRootCa: ca.rootCertPath,
    altCaHostname: null,
    authToken: 'node-a-token',
    clusterId: 'Kubernetes',
    secretTtl: 24 * 3600_000,
    caHeaders: [],
    ...over,
  };
}

export interface ManagerRig {
  readonly manager: CertManager;
  readonly logs: LogCollector;
  readonly registry: Registry;
}

export function manager(t: ExecutionContext, config: IdentityConfig, clock: Clock, o: { mode?: 'node' | 'waypoint'; backoffMs?: number; maxConcurrent?: number; caClient?: CaClient; csrFactory?: (id: SpiffeId) => CsrBundle } = {}): ManagerRig {
  const logs = new LogCollector();
  const registry = new Registry();
  const m = createIdentityManager({
    config,
    logger: createLogger({ level: 'debug', format: 'json', destination: logs }),
    registry,
    clock,
    mode: o.mode ?? 'node',
    ...(o.backoffMs !== undefined ? { backoff: { initialMs: o.backoffMs, maxMs: o.backoffMs * 4, jitter: 0.2 } } : {}),
    ...(o.maxConcurrent !== undefined ? { maxConcurrent: o.maxConcurrent } : {}),
    ...(o.caClient ? { caClient: o.caClient } : {}),
    ...(o.csrFactory ? { csrFactory: o.csrFactory } : {}),
  });
  t.teardown(() => m.destroy());
  return { manager: m, logs, registry };
}

/** Polls `pred` every 10ms, up to `ms`. */
export async function eventually(pred: () => boolean, ms = 10_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return pred();
}

/**
 * The real Istio CA client, recording the order in which the manager starts CSRs (the
 * CA's own arrival order can differ by a few places, since each call reads the token file).
 */
export class RecordingCaClient implements CaClient {
  readonly started: string[] = [];
  private readonly inner: IstioCaClient;
  constructor(config: IdentityConfig) {
    this.inner = new IstioCaClient({ address: config.caAddress, rootCa: config.caRootCa, altHostname: config.altCaHostname, authToken: config.authToken, clusterId: config.clusterId });
  }
  createCertificate(req: CaRequest): Promise<CaResponse> {
    this.started.push(req.identity.toString());
    return this.inner.createCertificate(req);
  }
  close(): void {
    this.inner.close();
  }
}
