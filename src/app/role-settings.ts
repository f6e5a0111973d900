import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigOf, KeySet } from '../config/key';
import { redactedConfig } from '../config/load';
import { createLogger } from '../logging/logger';
import { createRegistry } from '../metrics/registry';
import { StateUpdater } from '../state/proxy-state';
import type { COMMON_KEYS } from '../config/keys-common';
import type { HBONE_TRANSPORT_KEYS } from '../config/keys-node';
import type { HboneTransportOptions } from '../transport/hbone-transport';
import { Runtime } from './runtime';

/** The HBONE keys the node and the waypoint share (one key set, spread into both). */
type TransportKeys = ConfigOf<typeof HBONE_TRANSPORT_KEYS>;

/** A role's transport tuning from its config: one mapping for every role that speaks HBONE. */
export function transportTuning(c: TransportKeys): Pick<
  HboneTransportOptions,
  'connectTimeout' | 'handshakeTimeout' | 'firstHeadersTimeout' | 'maxStreamsPerConnection' | 'unusedReleaseTimeout' | 'maxPendingHandshakesPerPeer' | 'maxConcurrentStreams' | 'maxControlFrames' | 'maxPreAcceptBytes' | 'h2' | 'keepalive'
> {
  return {
    connectTimeout: c.connectTimeout,
    handshakeTimeout: c.handshakeTimeout,
    firstHeadersTimeout: c.headersTimeout,
    maxStreamsPerConnection: c.poolMaxStreams,
    unusedReleaseTimeout: c.poolUnusedReleaseTimeout,
    maxPendingHandshakesPerPeer: c.maxPendingHandshakesPerPeer,
    maxConcurrentStreams: c.maxStreamsPerPeer,
    maxControlFrames: c.maxControlFrames,
    maxPreAcceptBytes: c.maxPreAcceptBytes,
    h2: { streamWindow: c.h2StreamWindow, connectionWindow: c.h2ConnectionWindow, frameSize: c.h2FrameSize },
    keepalive: { interval: c.hbonePingInterval, timeout: c.hbonePingTimeout },
  };
}

/** A role's Runtime (admin, stats, readiness, drain) from the keys every long-running command shares. */
export function roleRuntime(logger: Logger, registry: Registry, c: ConfigOf<typeof COMMON_KEYS>, onStopped?: () => void): Runtime {
  return new Runtime({
    logger,
    registry,
    adminAddr: c.adminAddr,
    statsAddr: c.statsAddr,
    readinessAddr: c.readinessAddr,
    terminationDeadlineMs: c.terminationDeadline,
    ...(onStopped ? { onStopped } : {}),
  });
}

/** What every long-running role builds first, in the same order: its composition root's base. */
export interface RoleCore {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly runtime: Runtime;
  readonly updater: StateUpdater;
  /** Readiness tasks every role has; each callback marks its task done. */
  readonly ready: { readonly state: () => void; readonly certificates: () => void; readonly listeners: () => void };
}

/**
 * Logger, registry, runtime (with the redacted config in /config_dump), the readiness tasks
 * "state", "certificates" and "listeners", and the state updater: the node and the waypoint
 * differ only in their names and key sets.
 */
export function roleCore<K extends KeySet>(o: {
  readonly keys: K;
  readonly config: ConfigOf<K> & ConfigOf<typeof COMMON_KEYS>;
  readonly logBase: Record<string, unknown>;
  readonly metricsComponent: string;
  readonly logDestination?: DestinationStream;
  readonly processMetrics?: boolean;
  readonly onStopped?: () => void;
}): RoleCore {
  const c = o.config;
  const logger = createLogger({ level: c.logLevel, format: c.logFormat, base: o.logBase, ...(o.logDestination ? { destination: o.logDestination } : {}) });
  const registry = createRegistry({ component: o.metricsComponent, processMetrics: o.processMetrics ?? true });
  const runtime = roleRuntime(logger, registry, c, o.onStopped);
  runtime.admin.addDumpSection('config', () => redactedConfig(o.keys, c));
  const r = runtime.readiness;
  const ready = { state: r.register('state'), certificates: r.register('certificates'), listeners: r.register('listeners') };
  return { logger, registry, runtime, updater: new StateUpdater(logger.child({ scope: 'state' })), ready };
}

/** The optional role options roleCore takes, without undefined members (exactOptionalPropertyTypes). */
export function pickDefined(o: { readonly logDestination?: DestinationStream | undefined; readonly processMetrics?: boolean | undefined; readonly onStopped?: (() => void) | undefined }): { logDestination?: DestinationStream; processMetrics?: boolean; onStopped?: () => void } {
  return { ...(o.logDestination ? { logDestination: o.logDestination } : {}), ...(o.processMetrics !== undefined ? { processMetrics: o.processMetrics } : {}), ...(o.onStopped ? { onStopped: o.onStopped } : {}) };
}
