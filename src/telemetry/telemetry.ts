import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AccessLog } from './access-log';
import { TcpMetrics } from './tcp-metrics';
import type { Clock } from '../util/clock';
import { ConnectionTracker } from './connection-tracker';

export interface TelemetryOptions {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
  /** ACCESS_LOG_UPDATE_INTERVAL in ms (0 = only the closing line). */
  readonly accessLogUpdateIntervalMs: number;
  /** How often long-lived connections' bytes reach the counters. */
  readonly flushIntervalMs?: number;
}

/**
 * The telemetry bundle every connection handler receives: metrics, access log, clock and
 * the live-connection tracker. Built once by the composition root. Role-neutral: the node
 * proxy and the waypoint record connections the same way; request-level records (the
 * waypoint's HTTP requests) belong in this module too, beside the connection they ride on.
 */
export class Telemetry {
  readonly metrics: TcpMetrics;
  readonly access: AccessLog;
  readonly clock: Clock;
  readonly tracker: ConnectionTracker;
  private readonly logger: Logger;

  constructor(opts: TelemetryOptions) {
    this.metrics = new TcpMetrics(opts.registry);
    this.access = new AccessLog(opts.logger);
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.tracker = new ConnectionTracker({
      logger: opts.logger,
      clock: opts.clock,
      updateIntervalMs: opts.accessLogUpdateIntervalMs,
      flushIntervalMs: opts.flushIntervalMs ?? 5000,
    });
  }

  /** A second record() of one connection: a bug in its owner, logged (the first record stands). */
  noteDuplicateRecord(r: { readonly fields: Record<string, string> }): void {
    this.logger.error({ ...r.fields }, 'internal: connection recorded twice (ignored)');
  }
}
