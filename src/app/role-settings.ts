import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigOf } from '../config/key';
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
