import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createLogger } from '../logging/logger';
import { createRegistry } from '../metrics/registry';
import { Runtime, type RuntimeAddresses } from './runtime';
import type { NodeConfig } from '../config/node-config';
import { NODE_KEYS } from '../config/keys-node';
import { redactedConfig } from '../config/load';
import { systemClock, type Clock } from '../util/clock';

export interface NodeAppOptions {
  readonly config: NodeConfig;
  /** Log sink; stdout by default. Tests pass a LogCollector. */
  readonly logDestination?: DestinationStream;
  readonly clock?: Clock;
  /** Register process metrics (one per process; tests running several apps may turn it off). */
  readonly processMetrics?: boolean;
  /** Called when /quitquitquit finished the shutdown. */
  readonly onStopped?: () => void;
}

/**
 * Composition root of the node proxy: the only place that constructs the registry, the
 * logger, the state, the certificate manager and the proxies, and wires them together.
 */
export class NodeApp {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly runtime: Runtime;
  readonly clock: Clock;

  constructor(readonly opts: NodeAppOptions) {
    const c = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.logger = createLogger({ level: c.logLevel, format: c.logFormat, base: { component: 'node', node: c.nodeName || undefined }, ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
    this.registry = createRegistry({ component: 'ztunnel', processMetrics: opts.processMetrics ?? true });
    this.runtime = new Runtime({
      logger: this.logger,
      registry: this.registry,
      adminAddr: c.adminAddr,
      statsAddr: c.statsAddr,
      readinessAddr: c.readinessAddr,
      terminationDeadlineMs: c.terminationDeadline,
      ...(opts.onStopped ? { onStopped: opts.onStopped } : {}),
    });
    this.runtime.admin.addDumpSection('config', () => redactedConfig(NODE_KEYS, c));
  }

  start(): Promise<RuntimeAddresses> {
    return this.runtime.start();
  }

  close(): Promise<void> {
    return this.runtime.close();
  }

  destroy(): void {
    this.runtime.destroy();
  }
}
