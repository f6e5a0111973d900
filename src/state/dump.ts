import type { StateView } from './view';

/**
 * The state part of /config_dump in ztunnel's shape (`workloads[]`, `services[]`,
 * `policies[]`, `version`); the domain objects are plain data, so they are shown as is.
 * `staticConfig` and the last load error come from the LocalConfigSource's own dump.
 */
export function stateDump(view: StateView): { workloads: unknown[]; services: unknown[]; policies: unknown[]; version: number } {
  return {
    workloads: [...view.allWorkloads()],
    services: [...view.allServices()],
    policies: [...view.allPolicies()],
    version: view.version,
  };
}
