import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Readiness } from '../admin/readiness';
import { AdminServer } from '../admin/admin-server';
import { MetricsServer, ReadinessServer } from '../admin/probe-servers';
import type { ListenAddr, SocketAddr } from '../util/socket-addr';
import { formatSocketAddr } from '../util/socket-addr';
import type { BoundListener, Component } from './component';

export interface RuntimeOptions {
  logger: Logger;
  registry: Registry;
  adminAddr: ListenAddr | null;
  statsAddr: ListenAddr | null;
  readinessAddr: ListenAddr | null;
  terminationDeadlineMs: number;
  /** Called once the runtime has fully stopped after a /quitquitquit (the CLI exits). */
  onStopped?: () => void;
}

export interface RuntimeAddresses {
  admin: SocketAddr | null;
  stats: SocketAddr | null;
  readiness: SocketAddr | null;
  listeners: BoundListener[];
}

/**
 * What every role's composition root shares: the admin/stats/readiness servers, readiness,
 * and ordered lifecycle of its components. Shutdown order (ztunnel run_with_drain):
 * readiness false → components stop accepting and drain → deadline → destroy → servers close.
 */
export class Runtime {
  readonly readiness = new Readiness();
  readonly admin: AdminServer;
  private readonly metricsServer: MetricsServer;
  private readonly readinessServer: ReadinessServer;
  private readonly components: Component[] = [];
  private addresses: RuntimeAddresses = { admin: null, stats: null, readiness: null, listeners: [] };
  private closing: Promise<void> | null = null;
  private started = false;

  constructor(private readonly opts: RuntimeOptions) {
    this.admin = new AdminServer({ logger: opts.logger, onQuit: () => this.quit() });
    this.metricsServer = new MetricsServer(opts.registry);
    this.readinessServer = new ReadinessServer(this.readiness);
    this.admin.addDumpSection('listeners', () => this.listenerDump());
  }

  get logger(): Logger {
    return this.opts.logger;
  }

  get registry(): Registry {
    return this.opts.registry;
  }

  /** What /metrics serves instead of the registry alone (the node merges its worker threads' registries in). */
  setMetricsSource(collect: () => Promise<string>): void {
    this.metricsServer.setSource(collect);
  }

  /** Adds a component; components start in order and stop in reverse order. */
  add<C extends Component>(c: C): C {
    this.components.push(c);
    if (c.dump) this.admin.addDumpSection(c.name, () => c.dump!());
    return c;
  }

  /** Binds the servers, then starts components in order. Any failure undoes everything. */
  async start(): Promise<RuntimeAddresses> {
    if (this.started) return this.addresses;
    this.started = true;
    try {
      if (this.opts.readinessAddr) this.addresses.readiness = await this.readinessServer.start(this.opts.readinessAddr);
      if (this.opts.adminAddr) this.addresses.admin = await this.admin.start(this.opts.adminAddr);
      if (this.opts.statsAddr) this.addresses.stats = await this.metricsServer.start(this.opts.statsAddr);
      for (const c of this.components) await c.start();
    } catch (err) {
      this.destroy();
      await this.closeServers();
      throw err;
    }
    this.addresses.listeners = this.collectListeners();
    this.opts.logger.info(
      {
        admin: fmt(this.addresses.admin),
        stats: fmt(this.addresses.stats),
        readiness: fmt(this.addresses.readiness),
        listeners: this.addresses.listeners.map((l) => `${l.name}=${formatSocketAddr(l.address)}${l.workload ? `(${l.workload})` : ''}`),
      },
      'started',
    );
    return this.addresses;
  }

  currentAddresses(): RuntimeAddresses {
    return { ...this.addresses, listeners: this.collectListeners() };
  }

  /** Graceful stop: idempotent; resolves when everything is closed. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  /** Forceful stop of every component now. */
  destroy(): void {
    for (const c of [...this.components].reverse()) {
      try {
        c.destroy();
      } catch (err) {
        this.opts.logger.warn({ err, component: c.name }, 'destroy failed');
      }
    }
  }

  private async quit(): Promise<void> {
    // Reply to /quitquitquit after the drain, as ztunnel does; the admin server closes last.
    await this.drainComponents();
    setImmediate(() => {
      void this.close().then(() => this.opts.onStopped?.());
    });
  }

  private drainPromise: Promise<void> | null = null;

  private drainComponents(): Promise<void> {
    if (this.drainPromise) return this.drainPromise;
    this.drainPromise = (async () => {
      this.readiness.markShuttingDown();
      const deadline = this.opts.terminationDeadlineMs;
      this.opts.logger.info({ deadlineMs: deadline }, 'draining');
      const all = Promise.all([...this.components].reverse().map((c) => c.close().catch(() => undefined)));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'deadline'>((r) => (timer = setTimeout(() => r('deadline'), deadline)));
      const res = await Promise.race([all.then(() => 'drained' as const), expired]);
      clearTimeout(timer);
      if (res === 'deadline') {
        this.opts.logger.warn({ deadlineMs: deadline }, 'drain deadline reached; force-closing remaining connections');
        this.destroy();
        await all;
      } else this.opts.logger.info('drained');
    })();
    return this.drainPromise;
  }

  private async doClose(): Promise<void> {
    await this.drainComponents();
    await this.closeServers();
    this.opts.logger.info('stopped');
    this.opts.logger.flush?.();
  }

  private async closeServers(): Promise<void> {
    await Promise.all([this.metricsServer.close(), this.readinessServer.close(), this.admin.close()]);
  }

  private collectListeners(): BoundListener[] {
    return this.components.flatMap((c) => (c.listeners ? [...c.listeners()] : []));
  }

  private listenerDump(): unknown {
    const a = this.currentAddresses();
    return {
      admin: fmt(a.admin),
      stats: fmt(a.stats),
      readiness: fmt(a.readiness),
      proxies: a.listeners.map((l) => ({ name: l.name, address: formatSocketAddr(l.address), workload: l.workload ?? null })),
    };
  }
}

function fmt(a: SocketAddr | null): string | null {
  return a ? formatSocketAddr(a) : null;
}
