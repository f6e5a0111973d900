import { Counter, Gauge, type Registry } from 'prom-client';
import type { StateView } from '../state/view';

export interface StateMetrics {
  /** One increment per load attempt of the local config: result="applied" | "rejected". */
  readonly localConfigReloads: Counter<'result'>;
}

/**
 * Workload-state metrics on the composition root's registry. Object counts are read from
 * the state at scrape time, so nothing on the update path touches metrics except the
 * reload counter.
 */
export function createStateMetrics(registry: Registry, view?: StateView): StateMetrics {
  const localConfigReloads = new Counter({
    name: 'ztunnel_ts_local_config_reloads_total',
    help: 'Local config (LOCAL_XDS_PATH / LOCAL_XDS) loads, by result: applied, or rejected (the last good state stays)',
    labelNames: ['result'],
    registers: [registry],
  });
  localConfigReloads.labels('applied').inc(0);
  localConfigReloads.labels('rejected').inc(0);
  if (view) {
    new Gauge({
      name: 'ztunnel_ts_state_objects',
      help: 'Objects in the workload state, by kind (workload, service, policy)',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        this.labels('workload').set(view.allWorkloads().length);
        this.labels('service').set(view.allServices().length);
        this.labels('policy').set(view.allPolicies().length);
      },
    });
    new Gauge({
      name: 'ztunnel_ts_state_version',
      help: 'Number of state batches applied so far',
      registers: [registry],
      collect() {
        this.set(view.version);
      },
    });
  }
  return { localConfigReloads };
}
