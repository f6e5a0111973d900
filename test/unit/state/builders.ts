import * as path from 'node:path';
import type { Authorization, Service, Workload } from '../../../src/state/types';

/** The repository root (tests run from dist/test/unit/state). */
export const repoRoot = path.resolve(__dirname, '../../../..');
export const fixturesDir = path.join(repoRoot, 'test/fixtures/local-config');
/** The project's own loopback demo: two workloads (HBONE and TCP), two services, one policy. */
export const loopbackConfig = path.join(fixturesDir, 'loopback.yaml');

export function wl(uid: string, over: Partial<Workload> = {}): Workload {
  return {
    uid,
    name: uid,
    namespace: 'default',
    serviceAccount: 'default',
    trustDomain: 'cluster.local',
    workloadIps: [],
    hostname: '',
    network: '',
    protocol: 'HBONE',
    networkMode: 'Standard',
    node: 'node-a',
    waypoint: null,
    networkGateway: null,
    applicationTunnel: null,
    authorizationPolicies: [],
    status: 'Healthy',
    clusterId: 'Kubernetes',
    locality: { region: '', zone: '', subzone: '' },
    canonicalName: '',
    canonicalRevision: '',
    workloadName: '',
    workloadType: 'deployment',
    nativeTunnel: false,
    capacity: 1,
    services: {},
    ...over,
  };
}

export function svc(namespace: string, hostname: string, over: Partial<Service> = {}): Service {
  return {
    name: hostname.split('.')[0] as string,
    namespace,
    hostname,
    vips: [],
    ports: {},
    subjectAltNames: [],
    waypoint: null,
    weightedWaypoints: [],
    loadBalancer: null,
    ipFamilies: 'Automatic',
    canonical: false,
    visibility: 'Public',
    ...over,
  };
}

export function pol(namespace: string, name: string, over: Partial<Authorization> = {}): Authorization {
  return { name, namespace, scope: 'Namespace', action: 'Allow', dryRun: false, rules: [], ...over };
}

/** mulberry32: a small seeded PRNG so distribution tests are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
