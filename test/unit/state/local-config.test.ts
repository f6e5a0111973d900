import test from 'ava';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatLocalConfigError, parseLocalConfig, type LocalConfigError } from '../../../src/state/local-config';
import { fixturesDir, loopbackConfig } from './builders';

function errorsOf(text: string): LocalConfigError[] {
  const r = parseLocalConfig(text, 'test.yaml');
  if (r.ok) throw new Error('expected the config to be rejected');
  return r.errors;
}

/** One error expected: returns it after checking there is exactly one. */
function onlyError(t: { is: (a: unknown, b: unknown, m?: string) => void }, text: string): LocalConfigError {
  const errs = errorsOf(text);
  t.is(errs.length, 1, JSON.stringify(errs));
  return errs[0] as LocalConfigError;
}

const W = (extra: string): string => `workloads:\n- uid: u1\n  name: n1\n  namespace: ns\n${extra}`;

test('the loopback demo config loads with every default filled', (t) => {
  const r = parseLocalConfig(readFileSync(loopbackConfig, 'utf8'), loopbackConfig);
  if (!r.ok) return t.fail(r.errors.map((e) => formatLocalConfigError('loopback.yaml', e)).join('\n'));
  const { workloads, services, policies } = r.value;
  t.deepEqual(workloads.map((w) => [w.uid, w.workloadIps, w.protocol, w.node, w.serviceAccount, w.trustDomain, w.clusterId, w.capacity]), [
    ['Kubernetes//Pod/demo/loop-hbone', ['127.0.0.1'], 'HBONE', 'laptop', 'loop', 'cluster.local', 'Kubernetes', 1],
    ['Kubernetes//Pod/demo/loop-tcp', ['127.0.0.2'], 'TCP', 'laptop', 'default', 'cluster.local', 'Kubernetes', 1],
  ]);
  t.deepEqual(workloads[0]?.services, { 'demo/echo.demo.svc': { 80: 8080 }, 'demo/echo-remote.demo.svc': { 80: 8080 } });
  t.deepEqual(services.map((s) => [s.namespace, s.hostname, s.vips, s.ports, s.canonical]), [
    ['demo', 'echo.demo.svc', [{ network: '', ip: '127.10.0.1', prefixLen: 32 }], { 80: 8080 }, true],
    ['demo', 'echo-remote.demo.svc', [{ network: 'elsewhere', ip: '127.10.0.2', prefixLen: 32 }], { 80: 8080 }, true],
  ]);
  t.deepEqual(services[0]?.subjectAltNames, ['spiffe://cluster.local/ns/demo/sa/loop']);
  t.is(policies.length, 1);
  const p = policies[0]!;
  t.deepEqual([p.namespace, p.name, p.scope, p.action, p.dryRun], ['demo', 'all-but-9999', 'Namespace', 'Allow', false]);
  t.deepEqual(p.rules[0]?.[0]?.[0]?.notDestinationPorts, [9999]);
  t.deepEqual(p.rules[0]?.[0]?.[0]?.destinationPorts, []);
});

test('our mesh fixture uses every section and defaults apply', (t) => {
  const r = parseLocalConfig(readFileSync(path.join(fixturesDir, 'mesh.yaml'), 'utf8'), 'mesh.yaml');
  if (!r.ok) return t.fail(r.errors.map((e) => formatLocalConfigError('mesh.yaml', e)).join('\n'));
  const v = r.value;
  t.is(v.workloads.length, 7);
  t.is(v.services.length, 4);
  t.is(v.policies.length, 3);
  const cart1 = v.workloads.find((w) => w.name === 'cart-1')!;
  t.deepEqual(cart1.workloadIps, ['10.0.1.1', 'fd00::1:1']);
  t.is(cart1.capacity, 2);
  t.is(cart1.trustDomain, 'cluster.local');
  t.deepEqual(cart1.locality, { region: 'eu', zone: 'eu-1a', subzone: '' });
  const legacy = v.workloads.find((w) => w.name === 'legacy')!;
  t.is(legacy.serviceAccount, 'default');
  t.is(legacy.status, 'Unhealthy');
  t.is(legacy.protocol, 'TCP');
  const db = v.workloads.find((w) => w.name === 'db')!;
  t.deepEqual(db.waypoint, { kind: 'hostname', namespace: 'shop', hostname: 'waypoint.shop.svc.cluster.local', hboneMtlsPort: 15008 });
  t.deepEqual(db.applicationTunnel, { protocol: 'NONE', port: null });
  t.is(v.workloads.find((w) => w.name === 'hostnet')!.networkMode, 'HostNetwork');
  const ext = v.services.find((s) => s.name === 'external')!;
  t.deepEqual(ext.vips, [{ network: '', ip: '203.0.113.0', prefixLen: 24 }]);
  t.is(ext.visibility, 'Namespace');
  t.is(ext.loadBalancer?.mode, 'Passthrough');
  const cart = v.services.find((s) => s.name === 'cart')!;
  t.deepEqual(cart.loadBalancer, { routingPreferences: ['Region', 'Zone'], mode: 'Failover', healthPolicy: 'OnlyHealthy' });
  t.deepEqual(cart.vips[1], { network: '', ip: 'fd00:96::10', prefixLen: 128 });
  const strict = v.policies.find((p) => p.name === 'istio_converted_static_strict')!;
  t.deepEqual(strict.rules[0]?.[0]?.[0]?.notPrincipals, [{ kind: 'Presence' }]);
  const deny = v.policies.find((p) => p.name === 'deny-ops')!;
  t.true(deny.dryRun);
  t.deepEqual(deny.rules[0]?.[0]?.[0]?.sourceIps, [
    { ip: '10.0.0.0', prefixLen: 8 },
    { ip: 'fd00::', prefixLen: 16 },
  ]);
});

test('an empty document is refused (a rewrite in progress looks like that); "workloads: []" is the empty state; flow style works', (t) => {
  for (const text of ['', '\n', '# only a comment\n']) t.regex(onlyError(t, text).message, /^the config is empty; an empty state is written "workloads: \[\]"/);
  t.deepEqual(parseLocalConfig('workloads: []\n', 'x'), { ok: true, value: { workloads: [], services: [], policies: [] } });
  const r = parseLocalConfig('{workloads: [{uid: a, name: a, namespace: b, workloadIps: ["::ffff:10.1.2.3", "FD00:0:0::1"]}]}', 'LOCAL_XDS');
  t.true(r.ok);
  if (r.ok) t.deepEqual(r.value.workloads[0]?.workloadIps, ['10.1.2.3', 'fd00::1'], 'IPs are canonicalised');
});

test('every error in a file is reported at once, with path, line, column and the expected form', (t) => {
  const errs = errorsOf(readFileSync(path.join(fixturesDir, 'invalid-many.yaml'), 'utf8'));
  t.deepEqual(
    errs.map((e) => `${e.line}:${e.column} ${e.path}`),
    [
      '5:17 workloads[0].workloadIps[0]',
      '6:13 workloads[0].protocol',
      '7:3 workloads[0].colour',
      '8:27 workloads[0].authorizationPolicies[0]',
      '9:3 workloads[1].name',
      '11:27 workloads[1].waypoint.destination',
      '16:10 services[0].vips[0]',
      '17:15 services[0].ports["80"]',
      '18:24 services[0].loadBalancer.mode',
      '25:9 policies[0].rules[0][0][0].methods',
      '26:23 policies[0].rules[0][0][0].principals[0]',
      '27:21 policies[0].rules[0][0][0].sourceIps[0]',
      '28:28 policies[0].rules[0][0][0].destinationPorts[0]',
    ],
  );
  t.is(formatLocalConfigError('f.yaml', errs[1]!), 'f.yaml:6:13: workloads[0].protocol: "HBONES" is not valid; expected one of HBONE, TCP');
});

test('bad IP names the value and the expected form', (t) => {
  const e = onlyError(t, W('  workloadIps: ["10.0.0.1", "10.0.0.256"]\n'));
  t.deepEqual(e, { path: 'workloads[0].workloadIps[1]', line: 5, column: 29, message: '"10.0.0.256" is not an IP address (expected e.g. 10.0.0.1 or fd00::1)' });
});

test('unknown enum value names the value and the allowed ones', (t) => {
  t.deepEqual(onlyError(t, W('  status: Dead\n')), { path: 'workloads[0].status', line: 5, column: 11, message: '"Dead" is not valid; expected one of Healthy, Unhealthy' });
  t.deepEqual(onlyError(t, W('  networkMode: host\n')).message, '"host" is not valid; expected one of Standard, HostNetwork');
  t.deepEqual(onlyError(t, W('  workloadType: statefulset\n')).message, '"statefulset" is not valid; expected one of deployment, cronjob, pod, job');
});

test('identity parts must be able to form a SPIFFE identity', (t) => {
  t.deepEqual(onlyError(t, W('  serviceAccount: "my sa"\n')), { path: 'workloads[0].serviceAccount', line: 5, column: 19, message: '"my sa" is not a valid service account for a SPIFFE identity (expected letters, digits, \'.\', \'_\' or \'-\')' });
  t.is(onlyError(t, W('  trustDomain: Cluster.Local\n')).message, '"Cluster.Local" is not a valid trust domain for a SPIFFE identity (expected lower-case letters, digits, \'.\', \'_\' or \'-\')');
});

test('unknown field is rejected at its key position', (t) => {
  const e = onlyError(t, W('  serviceaccount: x\n'));
  t.is(e.path, 'workloads[0].serviceaccount');
  t.is(e.line, 5);
  t.is(e.column, 3);
  t.regex(e.message, /^unknown field "serviceaccount"; expected one of: uid, name, namespace, serviceAccount,/);
  t.is(onlyError(t, 'workload: []\n').message, 'unknown field "workload"; expected one of: workloads, services, policies');
});

test('bad ports: out of range service port key, target port and capacity', (t) => {
  const base = 'services:\n- name: s\n  namespace: ns\n  hostname: s.ns\n';
  t.deepEqual(onlyError(t, `${base}  ports: {99999: 80}\n`), { path: 'services[0].ports["99999"]', line: 5, column: 11, message: '"99999" is not a port (expected an integer from 1 to 65535)' });
  t.deepEqual(onlyError(t, `${base}  ports: {80: http}\n`).message, '"http" is not a valid target port (expected an integer from 0 to 65535)');
  t.deepEqual(onlyError(t, W('  services: {"ns/s.ns": {80: -1}}\n')).path, 'workloads[0].services["ns/s.ns"]["80"]');
  t.deepEqual(onlyError(t, W('  capacity: -3\n')).message, '-3 is not a capacity (expected an integer from 0 to 4294967295)');
});

test('VIPs: network prefix required, CIDR allowed, bad prefix named', (t) => {
  const base = 'services:\n- name: s\n  namespace: ns\n  hostname: s.ns\n';
  t.deepEqual(onlyError(t, `${base}  vips: ["/10.0.0.1/40"]\n`), { path: 'services[0].vips[0]', line: 5, column: 10, message: '40 is not a valid prefix length for 10.0.0.1 (expected 0-32)' });
  t.is(onlyError(t, `${base}  vips: ["10.0.0.1"]\n`).message, '"10.0.0.1" is not a network address; expected "<network>/<ip>" or "<network>/<ip>/<prefix>" (network may be empty: "/10.96.0.1")');
  t.is(onlyError(t, `${base}  vips: ["net1/host.example"]\n`).path, 'services[0].vips[0]');
  const ok = parseLocalConfig(`${base}  vips: ["net1/10.0.0.0/16", "/2001:db8::1"]\n`, 'x');
  t.true(ok.ok);
  if (ok.ok) t.deepEqual(ok.value.services[0]?.vips, [{ network: 'net1', ip: '10.0.0.0', prefixLen: 16 }, { network: '', ip: '2001:db8::1', prefixLen: 128 }]);
});

test('required fields missing are reported at the owning map', (t) => {
  const errs = errorsOf('workloads:\n- name: x\n');
  t.deepEqual(
    errs.map((e) => [e.path, e.line, e.column, e.message]),
    [
      ['workloads[0].uid', 2, 3, 'required field is missing (expected a string)'],
      ['workloads[0].namespace', 2, 3, 'required field is missing (expected a string)'],
    ],
  );
  const p = errorsOf('policies:\n- name: p\n  namespace: ns\n  rules: []\n');
  t.deepEqual(p.map((e) => e.message), ['required field is missing (expected one of Global, Namespace, WorkloadSelector)', 'required field is missing (expected one of Allow, Deny)']);
});

test('wrong types are named: a string where a list is expected, a number where a string is expected', (t) => {
  t.is(onlyError(t, W('  workloadIps: 10.0.0.1\n')).message, 'expected a list of IP addresses, got "10.0.0.1"');
  t.is(onlyError(t, W('  node: 7\n')).message, 'expected a string, got 7');
  t.is(onlyError(t, W('  nativeTunnel: yes please\n')).message, 'expected true or false, got "yes please"');
});

test('waypoint by hostname must name a service in the file; by address is accepted', (t) => {
  const e = onlyError(t, W('  waypoint: {destination: {namespace: ns, hostname: wp.ns.svc}, hboneMtlsPort: 15008}\n'));
  t.deepEqual(e, { path: 'workloads[0].waypoint.destination', line: 5, column: 27, message: 'waypoint of workload u1 names service "ns/wp.ns.svc", which is not defined (no services are defined in this file)' });
  const ok = parseLocalConfig(W('  waypoint: {destination: "/10.0.0.9", hboneMtlsPort: 15009}\n'), 'x');
  t.true(ok.ok);
  if (ok.ok) t.deepEqual(ok.value.workloads[0]?.waypoint, { kind: 'address', network: '', ip: '10.0.0.9', hboneMtlsPort: 15009 });
  const svcRef = errorsOf('services:\n- name: s\n  namespace: ns\n  hostname: s.ns\n  weightedWaypoints:\n  - {destination: {namespace: ns, hostname: gone}, weight: 3}\n');
  t.is(svcRef[0]?.message, 'weighted waypoint of service ns/s.ns names service "ns/gone", which is not defined (known: ns/s.ns)');
});

test('authorizationPolicies entries must name a policy in the file', (t) => {
  const e = onlyError(t, W('  authorizationPolicies: [istio-system/istio_converted_static_strict]\n'));
  t.is(e.path, 'workloads[0].authorizationPolicies[0]');
  t.is(e.message, 'authorizationPolicies of workload u1 names policy "istio-system/istio_converted_static_strict", which is not defined (no policies are defined in this file)');
  t.is(onlyError(t, W('  authorizationPolicies: [just-a-name]\n')).message, '"just-a-name" is not a policy key; expected "<namespace>/<name>"');
});

const P = (match: string): string => `policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - ${match}\n`;

test('every HTTP-only field in a match is rejected as not enforceable at L4 (fail closed)', (t) => {
  for (const f of ['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts', 'requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks']) {
    const e = onlyError(t, P(`${f}: ["x"]`));
    t.is(e.path, `policies[0].rules[0][0][0].${f}`);
    t.is(e.line, 7);
    t.is(e.column, 9);
    t.is(e.message, `"${f}" is an L7 (HTTP) attribute and cannot be enforced at L4 by the node proxy; enforce it in a waypoint (AuthorizationPolicy with targetRefs to the waypoint) and keep only L4 fields here`);
  }
});

test('targetRefs on a policy is named as waypoint-only', (t) => {
  const e = onlyError(t, 'policies:\n- {name: p, namespace: ns, scope: Namespace, action: Allow, targetRefs: [{kind: Gateway, name: wp}]}\n');
  t.is(e.path, 'policies[0].targetRefs');
  t.is(e.message, '"targetRefs": policies attached to a waypoint with targetRefs are enforced by that waypoint, not by the node proxy; remove it here');
});

test('string matches: tagged forms and Presence spellings; anything else rejected', (t) => {
  const ok = parseLocalConfig(P('principals: [{Exact: a}, {Prefix: b}, {Suffix: c}, Presence, {Presence: {}}, {Presence: null}]'), 'x');
  t.true(ok.ok);
  if (ok.ok) {
    t.deepEqual(ok.value.policies[0]?.rules[0]?.[0]?.[0]?.principals, [
      { kind: 'Exact', value: 'a' },
      { kind: 'Prefix', value: 'b' },
      { kind: 'Suffix', value: 'c' },
      { kind: 'Presence' },
      { kind: 'Presence' },
      { kind: 'Presence' },
    ]);
  }
  t.is(onlyError(t, P('namespaces: [default]')).message, '"default" is not a string match; expected {Exact: x}, {Prefix: x}, {Suffix: x} or Presence');
  t.is(onlyError(t, P('namespaces: [{Presence: yes}]')).message, 'Presence takes no value, got "yes"');
  t.is(onlyError(t, P('serviceAccounts: [{namespace: a}]')).message, 'required field is missing (expected a string)');
  t.is(onlyError(t, P('notDestinationIps: ["fd00::/129"]')).message, '"fd00::/129" has an invalid prefix length (expected 0-128)');
});

test('duplicates are rejected: workload uid, service key, policy key', (t) => {
  const e = errorsOf('workloads:\n- {uid: a, name: a, namespace: n}\n- {uid: a, name: b, namespace: n}\n');
  t.deepEqual(e, [{ path: 'workloads[1]', line: 3, column: 3, message: 'duplicate uid "a"' }]);
  const s = errorsOf('services:\n- {name: a, namespace: n, hostname: h}\n- {name: b, namespace: n, hostname: h}\n');
  t.deepEqual(s, [{ path: 'services[1]', line: 3, column: 3, message: 'duplicate namespace/hostname "n/h"' }]);
  const p = errorsOf('policies:\n- {name: a, namespace: n, scope: Global, action: Deny}\n- {name: a, namespace: n, scope: Namespace, action: Allow}\n');
  t.deepEqual(p, [{ path: 'policies[1]', line: 3, column: 3, message: 'duplicate namespace/name "n/a"' }]);
});

test('YAML syntax errors carry the line and the source name', (t) => {
  const e = errorsOf('workloads:\n- uid: a\n  name: [unclosed\n');
  t.true(e.length >= 1);
  t.is(e[0]!.path, '');
  t.regex(e[0]!.message, /^YAML syntax error in test\.yaml: /);
  t.true(e[0]!.line >= 3);
});
