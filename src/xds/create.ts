import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigOf } from '../config/key';
import type { XDS_CLIENT_KEYS } from '../config/keys-node';
import type { NodeConfig } from '../config/node-config';
import type { StateUpdater } from '../state/proxy-state';
import type { Clock } from '../util/clock';
import { createXdsMetrics } from './metrics';
import { buildNode } from './node';
import { loadXdsCodec } from './proto';
import { XdsSource } from './xds-source';

/** The settings the xDS source reads: the node's keys; the waypoint has them too, without on-demand. */
export type XdsSourceConfig = ConfigOf<typeof XDS_CLIENT_KEYS> &
  Pick<NodeConfig, 'authToken' | 'clusterId' | 'instanceIp' | 'podNamespace'> &
  Partial<Pick<NodeConfig, 'xdsOnDemand' | 'xdsOnDemandTimeout'>>;

export interface CreateXdsSourceOptions {
  readonly config: XdsSourceConfig;
  readonly updater: StateUpdater;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** The xDS source of a node proxy or waypoint from its config, or null when XDS_ADDRESS is off. */
export function createXdsSource(o: CreateXdsSourceOptions): XdsSource | null {
  const c = o.config;
  if (c.xdsAddress === null) return null;
  return new XdsSource({
    address: c.xdsAddress,
    rootCa: c.xdsRootCa,
    altHostname: c.altXdsHostname,
    authToken: c.authToken,
    clusterId: c.clusterId,
    headers: c.xdsHeaders,
    node: buildNode({ instanceIp: c.instanceIp, podName: c.podName, podNamespace: c.podNamespace, nodeName: c.nodeName, meta: c.proxyMetadata, metaJson: c.proxyMetadataJson }),
    onDemand: c.xdsOnDemand ?? false,
    onDemandTimeoutMs: c.xdsOnDemandTimeout,
    codec: loadXdsCodec(),
    metrics: createXdsMetrics(o.registry),
    logger: o.logger,
    writer: o.updater.source('xds'),
    state: o.updater.view,
    ...(o.clock ? { clock: o.clock } : {}),
  });
}
