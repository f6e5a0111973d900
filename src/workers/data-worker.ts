import { Socket } from 'node:net';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { buildDataPath, type DataPath } from '../app/node-data-path';
import { createLogger, logLevelsOf, type Logger } from '../logging/logger';
import { registerPoolMetrics } from '../metrics/pool-metrics';
import { registerThreadMetrics } from '../metrics/thread-metrics';
import { loadCapture } from '../native/capture';
import { detectOrigSrc } from '../native/orig-src';
import { loadNetnsAddon } from '../inpod/netns-addon';
import { isOwnAddressIn } from '../proxy/listener-manager';
import type { ListenerFacts as ProxyListenerFacts } from '../proxy/node-proxy';
import { nodeTcpTuning } from '../proxy/node-transport';
import { DemandLookup } from '../state/demand';
import { StateUpdater } from '../state/proxy-state';
import { PooledReadSocket } from '../transport/splice-readbuf';
import { systemClock } from '../util/clock';
import type { FromWorker, LevelsMsg, ListenerFacts, ReportPart, ToWorker, WorkerInit, WorkerReport } from './messages';
import { LineRelay } from './relay';
import { WorkerCertificates } from './worker-certs';
import { WorkerPods } from './worker-pods';

/**
 * One data-path worker thread of the node proxy. It owns the connections the main thread's
 * accept loop hands it (a duplicated descriptor per connection), with its own HBONE pool
 * and server, connection records and metric registry; it reads a replica of the state that
 * the main thread keeps equal by replaying every applied change, and certificates whose
 * keys the main thread sends after each issuance. It binds no listener.
 */
class DataWorker {
  private readonly logger: Logger;
  private readonly relay: LineRelay;
  private readonly registry = new Registry();
  private readonly updater: StateUpdater;
  private readonly certs: WorkerCertificates;
  private readonly pods: WorkerPods;
  private readonly path: DataPath;
  private facts: ListenerFacts;
  private readonly demandWaiters = new Map<number, (found: boolean) => void>();
  private nextDemand = 1;
  private stopping: Promise<void> | null = null;
  private adopted = 0;

  constructor(
    private readonly port: MessagePort,
    init: WorkerInit,
  ) {
    const c = init.config;
    this.relay = new LineRelay((lines) => this.send({ t: 'log', lines }));
    this.logger = createLogger({ level: c.logLevel, format: 'json', base: { component: 'node', node: c.nodeName || undefined }, destination: this.relay });
    this.applyLevels(init.levels);
    this.updater = new StateUpdater(this.logger.child({ scope: 'state' }));
    this.updater.source('main').applyBatch(init.state);
    this.facts = init.listeners;
    this.certs = new WorkerCertificates((m) => this.send(m), systemClock, c.caAddress);
    for (const m of init.certs) this.addCert(m);
    const netns = loadNetnsAddon();
    this.pods = new WorkerPods(netns.available ? netns.addon : null, nodeTcpTuning(c));
    this.pods.replace(init.pods);
    const capture = loadCapture();
    const state = this.updater.view;
    const listenerFacts: ProxyListenerFacts = {
      illegalPorts: () => new Set(this.facts.illegalPorts),
      isOwnAddress: (a) => isOwnAddressIn(this.facts.bound, a),
    };
    this.path = buildDataPath({
      config: c,
      logger: this.logger,
      registry: this.registry,
      clock: systemClock,
      state,
      certs: this.certs,
      capture,
      origSrc: detectOrigSrc(capture, c.enableOrigSrc),
      demand: init.demand ? new DemandLookup(state, (name) => this.demand(name)) : null,
      addrs: { outbound: null, inboundPlaintext: null, inbound: null, socks5: null },
      podSockets: this.pods,
      listenerFacts,
    });
    registerPoolMetrics(this.registry, this.path.transport.client);
    registerThreadMetrics(this.registry, init.index, () => this.adopted);
    state.onChange((ch) => this.path.followChange(ch));
    port.on('message', (m: ToWorker) => this.onMessage(m));
    this.send({ t: 'ready' });
  }

  private onMessage(m: ToWorker): void {
    switch (m.t) {
      case 'conn':
        return this.adopt(m.fd, m.info);
      case 'state':
        this.updater.source('main').applyBatch(m.batch);
        return;
      case 'listeners':
        this.facts = m.facts;
        return;
      case 'pods':
        this.pods.replace(m.pods);
        return this.send({ t: 'pods-applied', seq: m.seq });
      case 'cert':
        return this.addCert(m.material);
      case 'cert-reply':
        return this.certs.answer(m.id, m.ok ? null : { reason: m.reason, message: m.message });
      case 'demand-reply': {
        const w = this.demandWaiters.get(m.id);
        this.demandWaiters.delete(m.id);
        return w?.(m.found);
      }
      case 'levels':
        return this.applyLevels(m.levels);
      case 'report':
        void this.report(m.id, m.part);
        return;
      case 'drain':
        void this.stop(false);
        return;
      case 'destroy':
        void this.stop(true);
        return;
    }
  }

  /** A connection from the main thread's accept loop: this thread owns it from here on. */
  private adopt(fd: number, info: Extract<ToWorker, { t: 'conn' }>['info']): void {
    let socket: Socket;
    try {
      // Plain TCP legs read into reused buffers once spliced; 15008's socket is wrapped by TLS.
      const opts = { fd, allowHalfOpen: true, readable: true, writable: true };
      socket = info.listener === 'inbound' ? new Socket(opts) : new PooledReadSocket(opts);
    } catch (err) {
      this.logger.error({ err, listener: info.listener }, 'cannot adopt a handed-over connection');
      return;
    }
    this.adopted++;
    if (!this.pods.track(info.pod, socket)) {
      this.logger.debug({ pod: info.pod, listener: info.listener }, 'handed-over connection closed: its pod already left');
      return;
    }
    this.path.proxy.accept(socket, info);
  }

  private addCert(m: Parameters<WorkerCertificates['add']>[0]): void {
    try {
      this.certs.add(m);
    } catch (err) {
      this.logger.error({ identity: m.identity, error: (err as Error).message }, 'certificate from the main thread rejected');
    }
  }

  private demand(name: string): Promise<boolean> {
    return new Promise((resolve) => {
      const id = this.nextDemand++;
      this.demandWaiters.set(id, resolve);
      this.send({ t: 'demand', id, name });
    });
  }

  private applyLevels(l: LevelsMsg): void {
    logLevelsOf(this.logger).mirror({ base: l.base, scopes: new Map(l.scopes) });
  }

  /** Only the part asked for: a scrape needs no connection rows, /debug/connections no dump. */
  private async report(id: number, part: ReportPart): Promise<void> {
    const p = this.path;
    const value: WorkerReport[ReportPart] =
      part === 'metrics' ? ((await this.registry.getMetricsAsJSON()) as WorkerReport['metrics']) : part === 'connections' ? p.telemetry.tracker.rows() : { proxy: p.proxy.dump(), pools: p.transport.client.dump(), hbone_server: p.transport.server.dump() };
    this.send({ t: 'report', id, value });
  }

  /** Drain (or force-close at the deadline), then tell the main thread; it ends the thread. */
  private stop(force: boolean): Promise<void> {
    if (force) this.path.proxy.destroy();
    if (!this.stopping) {
      this.stopping = this.path.proxy.close().then(() => {
        this.relay.flush();
        this.send({ t: 'drained' });
      });
    }
    return this.stopping;
  }

  private send(m: FromWorker): void {
    this.port.postMessage(m);
  }
}

if (parentPort) new DataWorker(parentPort, workerData as WorkerInit);
