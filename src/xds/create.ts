import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NodeConfig } from '../config/node-config';
import type { StateUpdater } from '../state/proxy-state';
import type { Clock } from '../util/clock';
import { createXdsMetrics } from './metrics';
import { buildNode } from './node';
import { loadXdsCodec } from './proto';
import { XdsSource } from './xds-source';

export interface CreateXdsSourceOptions {
  readonly config: NodeConfig;
  readonly updater: StateUpdater;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** The node's xDS source from its config, or null when XDS_ADDRESS is off. */
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
    onDemand: c.xdsOnDemand,
    onDemandTimeoutMs: c.xdsOnDemandTimeout,
    codec: loadXdsCodec(),
    metrics: createXdsMetrics(o.registry),
    logger: o.logger,
    writer: o.updater.source('xds'),
    state: o.updater.view,
    network: c.network,
    ...(o.clock ? { clock: o.clock } : {}),
  });
}
