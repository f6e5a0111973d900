import { Counter, Gauge, type Registry } from 'prom-client';

/** ztunnel's workload-manager metrics (same names), on the composition root's registry. */
export interface WorkloadManagerMetrics {
  readonly active: Gauge;
  readonly pending: Gauge;
  readonly started: Counter;
  readonly stopped: Counter;
}

export function createWorkloadManagerMetrics(registry: Registry): WorkloadManagerMetrics {
  return {
    active: new Gauge({ name: 'workload_manager_active_proxy_count', help: 'Pods whose in-pod proxy is running', registers: [registry] }),
    pending: new Gauge({ name: 'workload_manager_pending_proxy_count', help: 'Pods whose in-pod proxy failed to start and is retried', registers: [registry] }),
    started: new Counter({ name: 'workload_manager_proxies_started_total', help: 'In-pod proxies started', registers: [registry] }),
    stopped: new Counter({ name: 'workload_manager_proxies_stopped_total', help: 'In-pod proxies stopped', registers: [registry] }),
  };
}
