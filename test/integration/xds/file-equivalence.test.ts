import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServedResource } from '../../../src/controlplane/snapshot';
import { parseLocalConfig, formatLocalConfigError } from '../../../src/state/local-config';
import { ipBytes } from '../../../src/util/ip';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, loadXdsCodec, type XdsTypeUrl } from '../../../src/xds/proto';
import { waitUntil } from '../../helpers/node-harness';
import { XdsMesh, type XdsNode } from './harness';

/**
 * The YAML reader and the xDS translator share one normalisation (src/state/normalize.ts):
 * the same resources, written as sparsely as each format allows (istiod leaves proto3
 * defaults unset), give the identical state whether a node reads them from LOCAL_XDS_PATH
 * or receives them over delta xDS from the dev control plane. Covers the defaults (trust
 * domain, service account, cluster, capacity, HBONE port), a host-network workload (kept,
 * not indexed by IP), an application tunnel without a port, CIDR VIPs, CIDR policy matches,
 * and an identity segment no certificate could carry (rejected by both with the same words).
 */
const codec = loadXdsCodec();
const ip = (s: string): Uint8Array => ipBytes(s)!;

const FILE = `
workloads:
  - uid: Kubernetes//Pod/default/minimal
    name: minimal
    namespace: default
    workloadIps: ["10.0.5.1"]
  - uid: Kubernetes//Pod/kube-system/hostnet
    name: hostnet
    namespace: kube-system
    serviceAccount: agent
    workloadIps: ["10.0.5.2"]
    networkMode: HostNetwork
    node: elsewhere
    capacity: 0
    applicationTunnel: { protocol: PROXY }
    waypoint: { destination: "/10.0.5.9" }
services:
  - name: svc
    namespace: default
    hostname: svc.default.svc.cluster.local
    vips: ["/10.96.5.0/24", "/10.96.6.1"]
    ports: { 80: 8080 }
policies:
  - name: deny-ten
    namespace: default
    scope: Namespace
    action: Deny
    rules:
      - - - sourceIps: ["10.0.0.0/8"]
            destinationPorts: [80]
`;

const BAD_FILE = `
workloads:
  - uid: Kubernetes//Pod/bad/w
    name: w
    namespace: default
    serviceAccount: "not a name"
    workloadIps: ["10.0.5.3"]
`;

/** The same resources as istiod would send them: only what differs from proto3 defaults is set. */
function xdsSnapshot(): Map<XdsTypeUrl, Map<string, ServedResource>> {
  const res = (name: string, value: Uint8Array): ServedResource => ({ name, version: `v-${name}`, value, aliases: [], related: [] });
  const address = (o: Record<string, unknown>): Uint8Array => codec.address.encode(o).finish();
  const addresses = new Map<string, ServedResource>([
    ['Kubernetes//Pod/default/minimal', res('Kubernetes//Pod/default/minimal', address({ workload: { uid: 'Kubernetes//Pod/default/minimal', name: 'minimal', namespace: 'default', addresses: [ip('10.0.5.1')] } }))],
    [
      'Kubernetes//Pod/kube-system/hostnet',
      res(
        'Kubernetes//Pod/kube-system/hostnet',
        address({
          workload: {
            uid: 'Kubernetes//Pod/kube-system/hostnet',
            name: 'hostnet',
            namespace: 'kube-system',
            service_account: 'agent',
            addresses: [ip('10.0.5.2')],
            network_mode: 1,
            node: 'elsewhere',
            capacity: { value: 0 },
            application_tunnel: { protocol: 1 },
            waypoint: { address: { address: ip('10.0.5.9') } },
          },
        }),
      ),
    ],
    [
      'default/svc.default.svc.cluster.local',
      res(
        'default/svc.default.svc.cluster.local',
        address({ service: { name: 'svc', namespace: 'default', hostname: 'svc.default.svc.cluster.local', addresses: [{ address: ip('10.96.5.0'), length: 24 }, { address: ip('10.96.6.1') }], ports: [{ service_port: 80, target_port: 8080 }] } }),
      ),
    ],
    ['Kubernetes//Pod/bad/w', res('Kubernetes//Pod/bad/w', address({ workload: { uid: 'Kubernetes//Pod/bad/w', name: 'w', namespace: 'default', service_account: 'not a name', addresses: [ip('10.0.5.3')] } }))],
  ]);
  const policy = codec.authorization.encode({ name: 'deny-ten', namespace: 'default', scope: 1, action: 1, rules: [{ clauses: [{ matches: [{ source_ips: [{ address: ip('10.0.0.0'), length: 8 }], destination_ports: [80] }] }] }] }).finish();
  return new Map([
    [ADDRESS_TYPE, addresses],
    [AUTHORIZATION_TYPE, new Map([['default/deny-ten', res('default/deny-ten', policy)]])],
  ]);
}

let mesh: XdsMesh;
let fromFile: XdsNode;
let fromXds: XdsNode;

test.before(async () => {
  mesh = new XdsMesh(['node-file', 'node-xds']);
  mesh.writeConfig({ workloads: [] });
  await mesh.startControlPlane();
  mesh.cp!.xds.update(xdsSnapshot());
  const file = join(mesh.dir, 'same.yaml');
  writeFileSync(file, FILE);
  fromFile = await mesh.startNode('node-file', { XDS_ADDRESS: '', LOCAL_XDS_PATH: file });
  // The xDS node holds one rejected resource, so its readiness (an ACK per type) stays pending: wait for the NACK instead.
  fromXds = await mesh.startNode('node-xds', {}, { waitReady: false });
  await waitUntil(() => fromXds.xdsDump().types[ADDRESS_TYPE]!.lastNack !== null && fromXds.xdsDump().types[AUTHORIZATION_TYPE]!.lastAck !== null, 10_000, () => JSON.stringify(fromXds.xdsDump()));
});

test.after.always(async () => {
  await mesh?.close();
});

const byKey = <T>(list: readonly T[], key: (x: T) => string): T[] => [...list].sort((x, y) => key(x).localeCompare(key(y)));

test('the same workloads, services and policies via the file and via xDS give identical state, defaults included', (t) => {
  const f = fromFile.app.state;
  const x = fromXds.app.state;
  t.is(f.allWorkloads().length, 2);
  t.deepEqual(byKey(x.allWorkloads(), (w) => w.uid), byKey(f.allWorkloads(), (w) => w.uid));
  t.deepEqual(byKey(x.allServices(), (s) => s.hostname), byKey(f.allServices(), (s) => s.hostname));
  t.deepEqual(byKey(x.allPolicies(), (p) => p.name), byKey(f.allPolicies(), (p) => p.name));
  // The shared defaults, spelled out once.
  t.like(x.findWorkloadByUid('Kubernetes//Pod/default/minimal'), { serviceAccount: 'default', trustDomain: 'cluster.local', clusterId: 'Kubernetes', capacity: 1, protocol: 'TCP', networkMode: 'Standard', status: 'Healthy' });
  t.like(x.findWorkloadByUid('Kubernetes//Pod/kube-system/hostnet'), { capacity: 0, applicationTunnel: { protocol: 'PROXY', port: null }, waypoint: { kind: 'address', network: '', ip: '10.0.5.9', hboneMtlsPort: 15008 } });
});

test('the indexes agree too: a host-network workload is not found by its IP, a CIDR VIP matches inside its range', (t) => {
  for (const n of [fromFile, fromXds]) {
    const s = n.app.state;
    t.is(s.findWorkloadByAddr({ network: '', ip: '10.0.5.2' }), undefined, `${n.name}: host-network IP is the node's`);
    t.is(s.findWorkloadByAddr({ network: '', ip: '10.0.5.1' })?.name, 'minimal', n.name);
    t.is(s.findServiceByVip({ network: '', ip: '10.96.5.77' })?.name, 'svc', `${n.name}: inside the CIDR VIP`);
    t.is(s.findServiceByVip({ network: '', ip: '10.96.6.1' })?.name, 'svc', n.name);
    t.is(s.findServiceByVip({ network: '', ip: '10.96.7.1' }), undefined, n.name);
  }
});

test('an identity segment no certificate could carry is rejected by both, in the same words', (t) => {
  const parsed = parseLocalConfig(BAD_FILE, 'bad.yaml');
  t.false(parsed.ok);
  const fileError = parsed.ok ? '' : parsed.errors.map((e) => formatLocalConfigError('bad.yaml', e)).join('\n');
  const nack = fromXds.xdsDump().types[ADDRESS_TYPE]!.lastNack!.error;
  const words = '"not a name" is not a valid service account for a SPIFFE identity';
  t.true(fileError.includes(words), fileError);
  t.true(nack.startsWith('Kubernetes//Pod/bad/w: workload.serviceAccount: '), nack);
  t.true(nack.includes(words), nack);
  t.is(fromXds.app.state.findWorkloadByUid('Kubernetes//Pod/bad/w'), undefined);
});
