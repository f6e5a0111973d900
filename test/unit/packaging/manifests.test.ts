import test from 'ava';
import { NODE_KEYS } from '../../../src/config/keys-node';
import { CA_KEYS } from '../../../src/config/keys-ca';
import { WAYPOINT_KEYS } from '../../../src/config/keys-waypoint';
import { parseL7Config } from '../../../src/waypoint/config/parse';
import { loadNodeConfig } from '../../../src/config/node-config';
import { loadConfig } from '../../../src/config/load';
import { manifestDocs, schemaErrors } from './k8s-schema';

const DOWNWARD_ONLY = new Set(['TERMINATION_GRACE_PERIOD_SECONDS']);

function docs(file: string): any[] {
  return manifestDocs()
    .filter((d) => d.file === file)
    .map((d) => d.obj);
}

function daemonSet(): any {
  return docs('daemonset.yaml').find((d) => d.kind === 'DaemonSet');
}

function containerEnv(doc: any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of doc.spec.template.spec.containers[0].env) env[e.name] = e.value ?? `from:${JSON.stringify(e.valueFrom)}`;
  return env;
}

test('every manifest object is valid against the Kubernetes API schema', (t) => {
  const all = manifestDocs();
  t.true(all.length >= 6);
  for (const d of all) t.is(schemaErrors(d.obj), '', `${d.file}#${d.index} ${d.obj.kind}/${d.obj.metadata?.name}`);
});

test('the schema check rejects an invalid object (a string port, a missing container name)', (t) => {
  const ds = structuredClone(daemonSet());
  ds.spec.template.spec.containers[0].ports[0].containerPort = 'stats';
  t.regex(schemaErrors(ds), /containerPort must be integer/);
  const ds2 = structuredClone(daemonSet());
  delete ds2.spec.template.spec.containers[0].name;
  t.regex(schemaErrors(ds2), /name/);
  t.regex(schemaErrors({ apiVersion: 'example.com/v1', kind: 'Widget' }), /no schema known/);
});

test('the node DaemonSet captures like Istio\'s ztunnel chart: in-pod, not host network, ZDS socket, exact capabilities', (t) => {
  const ds = daemonSet();
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  t.falsy(pod.hostNetwork, 'captured pod traffic never reaches a host-network proxy');
  t.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW'] });
  t.is(c.securityContext.runAsUser, 0);
  t.true(c.securityContext.readOnlyRootFilesystem);
  t.false(c.securityContext.allowPrivilegeEscalation);
  t.falsy(c.securityContext.privileged);
  const sock = pod.volumes.find((v: any) => v.hostPath);
  t.deepEqual(sock.hostPath, { path: '/var/run/ztunnel', type: 'DirectoryOrCreate' });
  t.true(c.volumeMounts.some((m: any) => m.name === sock.name && m.mountPath === '/var/run/ztunnel'));
  t.is(containerEnv(ds).INPOD_ENABLED, 'true');
  t.is(containerEnv(ds).INPOD_UDS, '/var/run/ztunnel/ztunnel.sock');
  // Tolerates every taint, is node-critical, and rolls with a surge (port reuse) and no gap.
  t.true(pod.tolerations.some((x: any) => x.operator === 'Exists' && x.effect === 'NoSchedule' && !x.key));
  t.true(pod.tolerations.some((x: any) => x.operator === 'Exists' && x.effect === 'NoExecute' && !x.key));
  t.is(pod.priorityClassName, 'system-node-critical');
  t.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  t.is(containerEnv(ds).INPOD_PORT_REUSE, 'true');
  // istioctl and Istio's dashboards find ztunnel pods by these labels.
  t.is(ds.spec.template.metadata.labels.app, 'ztunnel');
  t.is(ds.spec.template.metadata.labels['sidecar.istio.io/inject'], 'false');
  t.is(ds.spec.template.metadata.annotations['prometheus.io/port'], '15020');
  t.is(c.readinessProbe.httpGet.path, '/healthz/ready');
  t.is(c.readinessProbe.httpGet.port, 15021);
});

test('the node DaemonSet talks to istiod for xDS and certificates with the projected istio-ca token and root', (t) => {
  const ds = daemonSet();
  const env = containerEnv(ds);
  const pod = ds.spec.template.spec;
  t.is(env.XDS_ADDRESS, 'https://istiod.istio-system.svc:15012');
  t.is(env.CA_ADDRESS, 'https://istiod.istio-system.svc:15012');
  const token = pod.volumes.find((v: any) => v.projected)?.projected.sources[0].serviceAccountToken;
  t.is(token.audience, 'istio-ca');
  t.is(pod.volumes.find((v: any) => v.configMap?.name === 'istio-ca-root-cert')?.name, 'istiod-ca-cert');
  t.is(env.AUTH_TOKEN, `/var/run/secrets/tokens/${token.path}`);
  t.is(env.CA_ROOT_CA, '/var/run/secrets/istio/root-cert.pem');
  t.is(env.XDS_ROOT_CA, '/var/run/secrets/istio/root-cert.pem');
  for (const name of ['NODE_NAME', 'POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP']) t.true(env[name]?.startsWith('from:'), name);
});

test('the DaemonSet only sets env vars the node proxy knows, and they parse', (t) => {
  const ds = daemonSet();
  const env = containerEnv(ds);
  const known = new Set(Object.values(NODE_KEYS).map((k) => k.env));
  for (const name of Object.keys(env)) t.true(known.has(name) || DOWNWARD_ONLY.has(name), `unknown env ${name}`);
  const literal = Object.fromEntries(Object.entries(env).filter(([, v]) => !v.startsWith('from:')));
  const { config } = loadNodeConfig(literal, []);
  t.is(config.terminationDeadline, 25_000);
});

test('the dev CA Deployment only sets env vars the CA knows, and they parse', (t) => {
  const [dep, svc] = docs('dev-ca.yaml');
  const env = containerEnv(dep);
  const known = new Set(Object.values(CA_KEYS).map((k) => k.env));
  for (const name of Object.keys(env)) t.true(known.has(name), `unknown env ${name}`);
  const { config } = loadConfig(CA_KEYS, env, []);
  t.deepEqual(config.listenAddr, { host: '0.0.0.0', port: 15012 });
  t.is(svc.spec.ports[0].port, 15012);
});

test('the local-state ConfigMap is in ztunnel local config format', (t) => {
  const cm = docs('configmap-local-state.yaml')[0];
  const text: string = cm.data['local-state.yaml'];
  const { parseLocalConfig } = require('../../../src/state/local-config') as typeof import('../../../src/state/local-config');
  const r = parseLocalConfig(text, 'configmap');
  t.true(r.ok, JSON.stringify(!r.ok && r.errors));
  if (r.ok) t.is(r.value.workloads.length, 2);
});

test('the waypoint Deployment + Service: own identity from the CA, ports 15008/15020/15021, env the waypoint knows', (t) => {
  const all = docs('waypoint.yaml');
  const dep = all.find((d) => d.kind === 'Deployment');
  const svc = all.find((d) => d.kind === 'Service');
  const c = dep.spec.template.spec.containers[0];
  t.deepEqual(c.args, ['waypoint']);
  t.deepEqual(c.ports.map((p: any) => p.containerPort).sort(), [15008, 15020, 15021]);
  t.deepEqual(svc.spec.ports.map((p: any) => p.port).sort(), [15008, 15021]);
  t.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  const env = containerEnv(dep);
  const known = new Set(Object.values(WAYPOINT_KEYS).map((k) => k.env));
  for (const name of Object.keys(env)) t.true(known.has(name), `unknown env ${name}`);
  const literal = Object.fromEntries(Object.entries(env).filter(([, v]) => !v.startsWith('from:')));
  const { config } = loadConfig(WAYPOINT_KEYS, literal, []);
  t.is(config.waypointFor, 'service');
  // Workloads, services and policies from istiod's xDS, as the node proxy gets them; no local file.
  t.is(config.xdsAddress, 'https://istiod.istio-system.svc:15012');
  t.is(config.xdsRootCa, '/var/run/secrets/istio/root-cert.pem');
  t.is(config.localXdsPath, null);
  t.regex(env['POD_NAME'] ?? '', /metadata\.name/);
  t.regex(env['POD_NAMESPACE'] ?? '', /metadata\.namespace/);
  t.true(c.securityContext.runAsNonRoot);
  // The routes the ConfigMap ships parse with the waypoint's own reader.
  const cm = all.find((d) => d.kind === 'ConfigMap');
  const parsed = parseL7Config([{ text: cm.data['routes.yaml'], source: 'waypoint-routes' }]);
  t.true(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
  if (parsed.ok) t.is(parsed.value.routes.length, 1);
});
