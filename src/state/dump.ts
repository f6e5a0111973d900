import type { GatewayAddress, Service, Workload } from './types';
import type { StateView } from './view';

/** ztunnel prints a gateway address as `network/ip` (or `namespace/hostname`) plus its port. */
function gateway(g: GatewayAddress | null): { destination: string; hboneMtlsPort: number } | null {
  if (!g) return null;
  return { destination: g.kind === 'address' ? `${g.network}/${g.ip}` : `${g.namespace}/${g.hostname}`, hboneMtlsPort: g.hboneMtlsPort };
}

/**
 * The state part of /config_dump in ztunnel's shape, so tooling that reads ztunnel's dump
 * reads ours: `workloads[]`, `services[]` (VIPs as `network/ip`, endpoints by workload uid),
 * `policies[]`, gateways as `{destination, hboneMtlsPort}`. `stateVersion` is ours.
 * `staticConfig` and the last load error come from the LocalConfigSource's own dump.
 */
export function stateDump(view: StateView): { workloads: unknown[]; services: unknown[]; policies: unknown[]; stateVersion: number } {
  const workloads = [...view.allWorkloads()];
  return {
    workloads: workloads.map((w) => ({ ...w, waypoint: gateway(w.waypoint), networkGateway: gateway(w.networkGateway) })),
    services: [...view.allServices()].map((s) => serviceDump(s, workloads)),
    policies: [...view.allPolicies()],
    stateVersion: view.version,
  };
}

function serviceDump(s: Service, workloads: readonly Workload[]): unknown {
  const key = `${s.namespace}/${s.hostname}`;
  const endpoints: Record<string, { workloadUid: string; service: string; port: Readonly<Record<number, number>> }> = {};
  for (const w of workloads) {
    const ports = w.services[key];
    if (ports) endpoints[w.uid] = { workloadUid: w.uid, service: key, port: ports };
  }
  return { ...s, vips: s.vips.map((v) => `${v.network}/${v.ip}`), waypoint: gateway(s.waypoint), endpoints };
}
