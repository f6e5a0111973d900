import test from 'ava';
import { normalizePolicy, normalizeService, normalizeWorkload } from '../../../src/state/normalize';
import { StateUpdater } from '../../../src/state/proxy-state';

test('a workload draft gets the defaults a pushed resource would get', (t) => {
  const r = normalizeWorkload({ uid: 'u', name: 'n', namespace: 'ns', workloadIps: ['::ffff:10.0.0.1', '2001:0db8::0001'], capacity: undefined });
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  t.like(r.value, { serviceAccount: 'default', trustDomain: 'cluster.local', clusterId: 'Kubernetes', capacity: 1, protocol: 'TCP', networkMode: 'Standard', status: 'Healthy', node: '', network: '' });
  t.deepEqual(r.value.workloadIps, ['10.0.0.1', '2001:db8::1'], 'IPs canonical, so index keys agree across sources');
  t.deepEqual(r.value.locality, { region: '', zone: '', subzone: '' });
  // Empty strings are what an unset protobuf field looks like: they get the default too.
  const empty = normalizeWorkload({ uid: 'u', name: 'n', namespace: 'ns', serviceAccount: '', trustDomain: '', clusterId: '' });
  t.like(empty.ok ? empty.value : {}, { serviceAccount: 'default', trustDomain: 'cluster.local', clusterId: 'Kubernetes' });
  const gw = normalizeWorkload({ uid: 'u', name: 'n', namespace: 'ns', waypoint: { kind: 'address', ip: '10.0.0.9' } });
  t.deepEqual(gw.ok ? gw.value.waypoint : null, { kind: 'address', network: '', ip: '10.0.0.9', hboneMtlsPort: 15008 });
});

test('every problem is reported with the field it concerns', (t) => {
  const r = normalizeWorkload({
    uid: '',
    name: 'n',
    namespace: 'a b',
    serviceAccount: 'sa/x',
    trustDomain: 'Upper.Case',
    workloadIps: ['10.0.0.1', 'nope'],
    capacity: -1,
    authorizationPolicies: ['no-slash'],
    services: { 'ns/h': { 70000: 80 } },
  });
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(
    r.errors.map((e) => e.field),
    ['uid', 'namespace', 'serviceAccount', 'trustDomain', 'workloadIps[1]', 'authorizationPolicies[0]', 'services["ns/h"]["70000"]', 'capacity'],
  );
  t.deepEqual(r.errors.find((e) => e.field === 'workloadIps[1]')?.path, ['workloadIps', 1]);
  t.is(r.errors[0]?.message, 'must not be empty');
});

test('service VIPs: single addresses get the full prefix, CIDR VIPs keep theirs, a bad prefix is refused', (t) => {
  const r = normalizeService({ name: 's', namespace: 'ns', hostname: 's.ns', vips: [{ ip: '10.96.0.1' }, { network: 'n1', ip: '10.0.0.0', prefixLen: 16 }, { ip: 'fd00::', prefixLen: 64 }] });
  t.deepEqual(r.ok ? r.value.vips : null, [
    { network: '', ip: '10.96.0.1', prefixLen: 32 },
    { network: 'n1', ip: '10.0.0.0', prefixLen: 16 },
    { network: '', ip: 'fd00::', prefixLen: 64 },
  ]);
  t.like(r.ok ? r.value : {}, { visibility: 'Public', ipFamilies: 'Automatic', canonical: false, loadBalancer: null });
  const bad = normalizeService({ name: 's', namespace: 'ns', hostname: 's.ns', vips: [{ ip: '10.0.0.0', prefixLen: 33 }] });
  t.deepEqual(bad.ok ? null : bad.errors.map((e) => [e.field, e.message]), [['vips[0]', '33 is not a valid prefix length for 10.0.0.0 (expected 0-32)']]);
});

test('policies: scope and action are required; matches get empty lists', (t) => {
  const bad = normalizePolicy({ name: 'p', namespace: 'ns' });
  t.deepEqual(bad.ok ? null : bad.errors.map((e) => e.field), ['scope', 'action']);
  const r = normalizePolicy({ name: 'p', namespace: 'ns', scope: 'Global', action: 'Deny', rules: [[[{ sourceIps: [{ ip: '::ffff:10.0.0.0', prefixLen: 8 }] }]]] });
  if (!r.ok) return t.fail();
  t.false(r.value.dryRun);
  t.deepEqual(r.value.rules[0]?.[0]?.[0]?.sourceIps, [{ ip: '10.0.0.0', prefixLen: 8 }]);
  t.deepEqual(r.value.rules[0]?.[0]?.[0]?.notPrincipals, []);
});

test('a host-network workload keeps its IPs but is not found by them (the IP is the node\'s)', (t) => {
  const r = normalizeWorkload({ uid: 'h', name: 'h', namespace: 'ns', networkMode: 'HostNetwork', workloadIps: ['10.0.0.5'] });
  if (!r.ok) return t.fail();
  const u = new StateUpdater();
  u.source('test').applyBatch({ workloads: { upsert: [r.value] } });
  t.deepEqual(u.view.findWorkloadByUid('h')?.workloadIps, ['10.0.0.5']);
  t.is(u.view.findWorkloadByAddr({ network: '', ip: '10.0.0.5' }), undefined);
});
