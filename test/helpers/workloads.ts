import { match } from '../../src/policy/authorize';
import type { Authorization, Service, Workload } from '../../src/state/types';

/** A complete Workload with test defaults; override what the test is about. */
export function workload(p: Partial<Workload> & { name: string; ip: string; node: string }): Workload {
  const { ip, ...rest } = p;
  return {
    uid: `cluster1//v1/Pod/${p.namespace ?? 'default'}/${p.name}`,
    namespace: 'default',
    serviceAccount: p.name,
    trustDomain: 'cluster.local',
    workloadIps: [ip],
    hostname: '',
    network: '',
    protocol: 'HBONE',
    networkMode: 'Standard',
    waypoint: null,
    networkGateway: null,
    applicationTunnel: null,
    authorizationPolicies: [],
    status: 'Healthy',
    clusterId: 'cluster1',
    locality: { region: '', zone: '', subzone: '' },
    canonicalName: p.name,
    canonicalRevision: 'v1',
    workloadName: p.name,
    workloadType: 'deployment',
    nativeTunnel: false,
    capacity: 1,
    services: {},
    ...rest,
  };
}

export function service(p: Partial<Service> & { name: string; vip: string; ports: Record<number, number> }): Service {
  const { vip, ...rest } = p;
  return {
    namespace: 'default',
    hostname: `${p.name}.${p.namespace ?? 'default'}.svc.cluster.local`,
    vips: [{ network: '', ip: vip, prefixLen: 32 }],
    subjectAltNames: [],
    waypoint: null,
    weightedWaypoints: [],
    loadBalancer: null,
    ipFamilies: 'IPv4',
    canonical: true,
    visibility: 'Public',
    ...rest,
  };
}

/** A DENY policy on the workloads that list it, matching one source principal. */
export function denyPrincipal(name: string, principal: string, namespace = 'default'): Authorization {
  return {
    name,
    namespace,
    scope: 'WorkloadSelector',
    action: 'Deny',
    dryRun: false,
    rules: [[[match({ principals: [{ kind: 'Exact', value: principal }] })]]],
  };
}

/** ztunnel's STRICT translation: deny when there is no peer identity. */
export function strictPolicy(): Authorization {
  return {
    name: 'istio_converted_static_strict',
    namespace: 'istio-system',
    scope: 'WorkloadSelector',
    action: 'Deny',
    dryRun: false,
    rules: [[[match({ notPrincipals: [{ kind: 'Presence' }] })]]],
  };
}

