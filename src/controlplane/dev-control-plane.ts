import { startDevCa, type DevCa, type DevCaOptions } from '../ca/dev-ca';
import { loadTokens, type Caller } from '../ca/authn';
import { createRegistry } from '../metrics/registry';
import { createStateMetrics } from '../metrics/state-metrics';
import { LocalConfigSource } from '../state/local-source';
import { StateUpdater } from '../state/proxy-state';
import { loadXdsCodec } from '../xds/proto';
import { buildSnapshot } from './snapshot';
import { XdsServer } from './xds-server';

export interface DevControlPlaneOptions extends Omit<DevCaOptions, 'services'> {
  /** Debounce of file events before a reload (tests shorten it). */
  readonly reloadDebounceMs?: number;
}

export interface DevControlPlane extends DevCa {
  readonly xds: XdsServer;
  /** The file source's dump: loads, last error, the text in force. */
  fileStatus(): unknown;
}

/**
 * The dev control plane: the dev CA's CreateCertificate plus delta ADS on the same TLS port
 * (what istiod serves on 15012). The ADS side serves LOCAL_XDS_PATH, read with the node
 * proxy's own parser and watched: every good edit becomes a delta push of the changed and
 * removed resources; a bad edit is logged with every error and the last good version
 * stays served. Without LOCAL_XDS_PATH it serves an empty state.
 */
export async function startDevControlPlane(o: DevControlPlaneOptions): Promise<DevControlPlane> {
  const log = o.logger.child({ scope: 'xds' });
  const callers = new Map<string, Caller>();
  for (const c of [...(o.tokensPath ? await loadTokens(o.tokensPath) : []), ...(o.callers ?? [])]) callers.set(c.token, c);
  const codec = loadXdsCodec();
  const xds = new XdsServer({ codec, logger: log, callers });
  // A private state fed by the same file source the node proxy uses (parser, watch,
  // debounce, keep-last-good); its contents are what the control plane serves.
  const updater = new StateUpdater(log);
  const file = new LocalConfigSource({
    path: o.localXdsPath,
    inline: null,
    updater,
    logger: log,
    metrics: createStateMetrics(createRegistry({ component: 'controlplane', processMetrics: false })),
    ...(o.reloadDebounceMs !== undefined ? { debounceMs: o.reloadDebounceMs } : {}),
  });
  const publish = (): void => {
    const v = updater.view;
    xds.update(buildSnapshot(codec, { workloads: v.allWorkloads(), services: v.allServices(), policies: v.allPolicies() }));
  };
  const unsubscribe = updater.view.onChange(() => publish());
  await file.start();
  publish();
  let ca: DevCa;
  try {
    ca = await startDevCa({ ...o, services: [xds.service()] });
  } catch (err) {
    unsubscribe();
    file.destroy();
    throw err;
  }
  log.info({ address: ca.address, source: o.localXdsPath }, 'dev control plane serving delta xDS');
  return {
    ...ca,
    xds,
    fileStatus: () => file.dump(),
    async close() {
      unsubscribe();
      await file.close();
      xds.closeStreams();
      await ca.close();
    },
    destroy() {
      unsubscribe();
      file.destroy();
      xds.closeStreams();
      ca.destroy();
    },
  };
}
