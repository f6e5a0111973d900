import { RoleLifecycle } from './role-lifecycle';
import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Runtime, RuntimeAddresses } from './runtime';
import { pickDefined, roleCore } from './role-settings';
import type { NodeConfig } from '../config/node-config';
import { NODE_KEYS } from '../config/keys-node';
import { systemClock, type Clock } from '../util/clock';
import type { Component } from './component';
import type { StateUpdater } from '../state/proxy-state';
import { LocalConfigSource } from '../state/local-source';
import { createXdsSource } from '../xds/create';
import type { XdsSource } from '../xds/xds-source';
import { stateDump } from '../state/dump';
import { DemandLookup } from '../state/demand';
import { createStateMetrics } from '../metrics/state-metrics';
import { registerPoolMetrics } from '../metrics/pool-metrics';
import { registerThreadMetrics } from '../metrics/thread-metrics';
import type { StateChange, StateView } from '../state/view';
import { createIdentityManager } from '../identity/create';
import type { CertManager } from '../identity/cert-manager';
import type { SpiffeId } from '../identity/spiffe';
import { describeCapture, loadCapture, type Capture } from '../native/capture';
import { detectOrigSrc, type OrigSrcMode } from '../native/orig-src';
import { ztunnelCertificates } from '../admin/cert-dump';
import type { Telemetry } from '../telemetry/telemetry';
import type { NodeProxy } from '../proxy/node-proxy';
import { workloadIdentity } from '../identity/spiffe';
import { registerDebugConnections } from '../admin/debug-connections';
import { sendJson, sendText } from '../admin/http-util';
import { explainHandler } from '../policy/explain-render';
import type { NodeTransport } from '../proxy/node-transport';
import { buildDataPath, type DataPath } from './node-data-path';
import { DataWorkers } from '../workers/data-workers';
import { readCgroupCpuLimit, resolveWorkerThreads, type CpuBudget } from '../workers/thread-count';
import { availableParallelism } from 'node:os';
import { mergeDumps, mergedMetrics } from '../workers/relay';
import { logDestinationOf } from '../logging/logger';
import { createInpodMode, splitInpodAddrs, type InpodMode, type PodState } from '../inpod/inpod-mode';
import { DnsProxy, type PodNamespace } from '../dns/dns-proxy';

export interface NodeAppOptions {
  readonly config: NodeConfig;
  /** Log sink; stdout by default (tests collect the JSON lines in memory). */
  readonly logDestination?: DestinationStream;
  readonly clock?: Clock;
  /** Register process metrics (one per process; tests running several apps may turn it off). */
  readonly processMetrics?: boolean;
  /** Called when /quitquitquit finished the shutdown. */
  readonly onStopped?: () => void;
  /** The CPUs the data-path threads are sized from; by default the host's cores and its cgroup quota. */
  readonly cpu?: CpuBudget;
}

/**
 * Composition root of the node proxy: the only place that constructs the registry, the
 * logger, the state, the certificate manager and the proxies, and wires them together.
 * Start order: local state → certificates → data path; readiness tasks "state",
 * "certificates" (every local workload identity has a certificate) and "listeners".
 */
export class NodeApp {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly runtime: Runtime;
  readonly clock: Clock;
  readonly state: StateView;
  readonly updater: StateUpdater;
  readonly certs: CertManager;
  readonly telemetry: Telemetry;
  readonly proxy: NodeProxy;
  readonly capture: Capture;
  readonly origSrc: OrigSrcMode;
  readonly localConfig: LocalConfigSource;
  /** INPOD_ENABLED: the ZDS client and the per-pod listeners; null in the per-workload-IP (loopback) mode. */
  readonly inpod: InpodMode | null;
  /** istiod's delta xDS (XDS_ADDRESS), or null when off. */
  readonly xds: XdsSource | null;
  /** DNS_CAPTURE: the DNS proxy on DNS_PROXY_ADDR; null when off. */
  readonly dns: DnsProxy | null;
  /** ZTUNNEL_WORKER_THREADS > 1: the data-path worker threads; null when the main thread serves everything. */
  readonly workers: DataWorkers | null;
  private readonly transport: NodeTransport;
  private readonly dataPath: DataPath;
  private readonly lifecycle: RoleLifecycle;

  constructor(readonly opts: NodeAppOptions) {
    const c = opts.config;
    this.clock = opts.clock ?? systemClock;
    const core = roleCore({ keys: NODE_KEYS, config: c, logBase: { component: 'node', node: c.nodeName || undefined }, metricsComponent: 'ztunnel', ...pickDefined(opts) });
    ({ logger: this.logger, registry: this.registry, runtime: this.runtime, updater: this.updater } = core);
    const readiness = this.runtime.readiness;
    const { state: stateReady, certificates: certsReady, listeners: listenersReady } = core.ready;
    this.state = this.updater.view;
    this.lifecycle = new RoleLifecycle(this.runtime, this.state, (ch) => this.onStateChange(ch));
    this.localConfig = new LocalConfigSource({
      path: c.localXdsPath || null,
      inline: c.localXds || null,
      updater: this.updater,
      logger: this.logger.child({ scope: 'state' }),
      metrics: createStateMetrics(this.registry, this.state),
    });
    this.xds = createXdsSource({ config: c, updater: this.updater, registry: this.registry, logger: this.logger.child({ scope: 'xds' }), clock: this.clock });
    // State is ready once every configured source delivered its first complete view.
    const sources = [...(c.localXdsPath || c.localXds ? [this.localConfig.ready] : []), ...(this.xds ? [this.xds.ready] : [])];
    if (sources.length === 0) this.logger.warn('no XDS_ADDRESS, LOCAL_XDS_PATH or LOCAL_XDS: the proxy knows no workloads and serves nothing');
    void Promise.all(sources).then(() => {
      stateReady();
      void this.certs.waitForIdentities(this.localIdentities()).then(certsReady);
    });
    this.certs = createIdentityManager({ config: c, logger: this.logger.child({ scope: 'identity' }), registry: this.registry, clock: this.clock, mode: 'node', shareKey: (cert, key) => this.workers?.shareKey(cert, key) });
    readiness.describe('certificates', () => this.certs.missingSummary(this.localIdentities()));
    this.capture = loadCapture();
    this.origSrc = detectOrigSrc(this.capture, c.enableOrigSrc);

    const network = c.network;
    // XDS_ON_DEMAND: the data path's lookups ask the control plane on a miss.
    const xds = this.xds;
    const demand = xds && c.xdsOnDemand ? new DemandLookup(this.state, (name) => xds.demand(name)) : null;
    this.dns = c.dnsCapture
      ? new DnsProxy({
          state: this.state,
          logger: this.logger,
          registry: this.registry,
          nodeName: c.nodeName,
          network,
          settings: { clusterDomain: c.clusterDomain, ipv6Enabled: c.ipv6Enabled, preferredNamespace: c.preferedServiceNamespace },
          addr: c.dnsProxyAddr,
          inpod: c.inpodEnabled,
          reusePort: c.inpodPortReuse,
          upstreams: c.dnsUpstreams,
          resolvConfPath: c.dnsResolvConf,
          forwardTimeoutMs: c.dnsForwardTimeout,
        })
      : null;
    const dns = this.dns;
    this.workers = this.buildWorkers(xds && c.xdsOnDemand ? (name) => xds.demand(name) : null);
    const workers = this.workers;
    const addrs = { outbound: c.outboundAddr, inboundPlaintext: c.inboundPlaintextAddr, inbound: c.inboundAddr, socks5: c.socks5Addr };
    const split = c.inpodEnabled ? splitInpodAddrs(addrs) : null;
    let zdsPending: (() => void) | null = c.inpodEnabled ? readiness.register('workload_manager') : null;
    this.inpod = split
      ? createInpodMode(
          {
            config: c,
            logger: this.logger,
            registry: this.registry,
            clock: this.clock,
            accept: (socket, info) => this.proxy.accept(socket, info),
            setReady: (ready) => {
              if (ready) zdsPending?.();
              zdsPending = ready ? null : (zdsPending ?? readiness.register('workload_manager'));
            },
            onPodsChanged: () => {
              this.certs.syncLocalIdentities(this.localIdentities());
              workers?.syncPods();
            },
            ...(dns && c.dnsProxyAddr.host === null ? { podExtras: (uid: string, info: { name: string; namespace: string }, netns: PodNamespace) => dns.startPod(uid, info, netns) } : {}),
          },
          split.pod,
        )
      : null;
    this.dataPath = buildDataPath({
      config: c,
      logger: this.logger,
      registry: this.registry,
      clock: this.clock,
      state: this.state,
      certs: this.certs,
      capture: this.capture,
      origSrc: this.origSrc,
      demand,
      addrs: split ? split.fixed : addrs,
      ...(this.inpod ? { podSockets: this.inpod.podSockets } : {}),
      ...(workers ? { handOff: workers.dispatch, onListenersChanged: () => workers.notifyListeners() } : {}),
      ...(this.capture.available ? { dupFd: this.capture.addon.dupFd.bind(this.capture.addon) } : {}),
    });
    ({ telemetry: this.telemetry, transport: this.transport, proxy: this.proxy } = this.dataPath);

    this.runtime.add(this.localConfig);
    if (this.xds) this.runtime.add(this.xds);
    this.runtime.add(certComponent(this.certs));
    if (workers) {
      this.runtime.add(workers);
      registerThreadMetrics(this.registry, 0, () => workers.mainThreadServed);
      this.runtime.setMetricsSource(async () => mergedMetrics(this.registry, await workers.report('metrics')));
    }
    this.runtime.add({
      name: 'proxy',
      start: async () => {
        await this.proxy.start();
        listenersReady();
      },
      close: () => this.proxy.close(),
      destroy: () => this.proxy.destroy(),
      listeners: () => this.proxy.listeners(),
      dump: this.threadsDump('proxy', () => this.proxy.dump()),
    });
    if (this.dns) this.runtime.add(this.dns);
    if (this.inpod) this.runtime.add(this.inpod.component);
    this.runtime.admin.addDumpFields(() => stateDump(this.state));
    this.runtime.admin.addDumpSection('certificates', () => ztunnelCertificates(this.certs.dump()));
    this.runtime.admin.addDumpSection('workloadState', () => this.workloadState());
    this.runtime.admin.addDumpSection('pools', this.threadsDump('pools', () => this.transport.client.dump()));
    registerPoolMetrics(this.registry, this.transport.client);
    this.runtime.admin.addDumpSection('hbone_server', this.threadsDump('hbone_server', () => this.transport.server.dump()));
    registerDebugConnections(this.runtime.admin, this.telemetry.tracker, workers ? async () => (await workers.report('connections')).flat() : undefined);
    this.runtime.admin.addHandler('/certificates/reissue', 'POST: re-issue every workload certificate now (after a CA rotation)', (req, res) => {
      if (req.method !== 'POST') return sendText(res, 405, 'method not allowed; use POST\n');
      return sendJson(res, 200, { queued: this.certs.reissueAll() });
    });

    this.runtime.admin.addHandler('/debug/state-index', 'what each state lookup index holds (address → workload, VIP → service, identity, node, endpoints, policies by namespace)', (_req, res) => sendJson(res, 200, this.updater.indexSnapshot()));
    this.runtime.admin.addHandler('/debug/explain', 'which route and policy decide a connection: ?src=<ip>&dst=<ip:port>[&identity=<spiffe|none>]', explainHandler(this.state, network));
  }

  /**
   * ztunnel's `workloadState`. In-pod, the pods the node agent handed over ZDS (`Up` once
   * their listeners run, `Pending` while a failed start is retried), whether or not the
   * state names them yet. Otherwise the workloads of this node in the state: `Up` once the
   * workload's certificate is available (it can be served), `Pending` until then.
   */
  private workloadState(): Record<string, PodState> {
    if (this.inpod) return this.inpod.workloadState();
    const out: Record<string, PodState> = {};
    for (const w of this.state.workloadsOnNode(this.opts.config.nodeName)) {
      out[w.uid] = { state: this.certs.findCertificate(workloadIdentity(w)) ? 'Up' : 'Pending', info: { name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount } };
    }
    return out;
  }

  /** Identities of the workloads on this node (prefetched; the "certificates" readiness waits on them). */
  private localIdentities(): SpiffeId[] {
    const seen = new Map<string, SpiffeId>();
    for (const w of this.state.workloadsOnNode(this.opts.config.nodeName)) {
      const id = workloadIdentity(w);
      seen.set(id.toString(), id);
    }
    // In-pod: a pod the agent enrolled but the state does not know yet still gets its certificate.
    for (const id of this.inpod?.fallbackIdentities((uid) => this.state.findWorkloadByUid(uid) !== undefined) ?? []) seen.set(id.toString(), id);
    return [...seen.values()];
  }

  /** Follows state changes: certificates, then this thread's data path (metric series, pooled connections, late rejection). */
  private onStateChange(change: StateChange): void {
    this.certs.syncLocalIdentities(this.localIdentities());
    this.dataPath.followChange(change);
  }

  /** A data-path /config_dump section: this thread's own, merged with every worker thread's when there are any. */
  private threadsDump(key: 'proxy' | 'pools' | 'hbone_server', own: () => unknown): () => unknown {
    const workers = this.workers;
    if (!workers) return own;
    return async () => mergeDumps([own(), ...(await workers.report('dump')).map((d) => (d as Record<string, unknown>)[key])]);
  }

  /**
   * ZTUNNEL_WORKER_THREADS > 1: the worker threads beside this one. Handing a connection
   * over duplicates its descriptor, which needs the native addon; without it the main
   * thread serves everything (said once at start).
   */
  private buildWorkers(demand: ((name: string) => Promise<boolean>) | null): DataWorkers | null {
    const c = this.opts.config;
    const plan = resolveWorkerThreads(c.workerThreads, this.opts.cpu ?? hostCpuBudget(c.cpuLimit));
    const dest = logDestinationOf(this.logger);
    if (plan.threads > 1 && (!this.capture.available || !dest)) {
      this.logger.warn({ threads: plan.threads, why: plan.why, reason: this.capture.available ? 'no log destination' : this.capture.reason }, 'more than one data-path thread needs the native addon; the data path runs on the main thread only');
      return null;
    }
    this.logger.info({ threads: plan.threads, why: plan.why }, 'data-path threads');
    if (plan.threads <= 1 || !this.capture.available || !dest) return null;
    const addon = this.capture.addon;
    return new DataWorkers({
      threads: plan.threads - 1,
      why: plan.why,
      config: c,
      logger: this.logger,
      logDestination: dest,
      state: this.state,
      certs: this.certs,
      dupFd: (fd) => addon.dupFd(fd),
      listenerFacts: () => ({ illegalPorts: [...this.proxy.listenerManager.illegalPorts()], bound: this.proxy.listenerManager.boundAddresses() }),
      demand,
      pods: () => this.inpod?.pods() ?? [],
    });
  }

  async start(): Promise<RuntimeAddresses> {
    // Once at start: without the addon, host-bound listeners use the local address as the
    // destination and SO_MARK is not set (fine on loopback meshes, not for iptables capture).
    if (this.capture.available) this.logger.info({ capture: true }, describeCapture(this.capture));
    else this.logger.warn({ capture: false, reason: this.capture.reason }, describeCapture(this.capture));
    if (this.origSrc.requested === true && !this.origSrc.enabled) throw new Error(`ENABLE_ORIG_SRC=true cannot work here: ${this.origSrc.reason}`);
    this.logger.info({ origSrc: this.origSrc.enabled, reason: this.origSrc.reason }, this.origSrc.enabled ? "inbound connections reach apps from the client's own IP" : "inbound connections reach apps from the proxy's address");
    return this.lifecycle.start();
  }

  close(): Promise<void> {
    return this.lifecycle.close();
  }

  destroy(): void {
    this.lifecycle.destroy();
  }
}

/** The certificate manager as a runtime component (stopped after the proxy drained). */
function certComponent(certs: CertManager): Component {
  return { name: 'certificates', start: () => certs.start(), close: () => certs.close(), destroy: () => certs.destroy() };
}

/** The host's CPUs: its core count and a limit from ZTUNNEL_CPU_LIMIT, else from the cgroup quota. */
function hostCpuBudget(configured: number | null): CpuBudget {
  if (configured !== null) return { cores: availableParallelism(), limit: configured, limitSource: 'ZTUNNEL_CPU_LIMIT' };
  const cg = readCgroupCpuLimit();
  return { cores: availableParallelism(), limit: cg?.limit ?? null, limitSource: cg?.source ?? null };
}
