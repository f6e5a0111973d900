import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { NODE_KEYS } from '../../../src/config/keys-node';
import { CA_KEYS } from '../../../src/config/keys-ca';
import { loadNodeConfig } from '../../../src/config/node-config';
import { loadConfig } from '../../../src/config/load';

const ROOT = path.resolve(__dirname, '../../../..');
const DOWNWARD_ONLY = new Set(['TERMINATION_GRACE_PERIOD_SECONDS']);

function docs(file: string): any[] {
  const parsed = parseAllDocuments(fs.readFileSync(path.join(ROOT, 'manifests', file), 'utf8'));
  for (const d of parsed) if (d.errors.length) throw new Error(`${file}: ${d.errors.join('; ')}`);
  return parsed.map((d) => d.toJS());
}

function containerEnv(doc: any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of doc.spec.template.spec.containers[0].env) env[e.name] = e.value ?? `from:${JSON.stringify(e.valueFrom)}`;
  return env;
}

test('the DaemonSet only sets env vars the node proxy knows, and they parse', (t) => {
  const ds = docs('daemonset.yaml')[0];
  const env = containerEnv(ds);
  const known = new Set(Object.values(NODE_KEYS).map((k) => k.env));
  for (const name of Object.keys(env)) t.true(known.has(name) || DOWNWARD_ONLY.has(name), `unknown env ${name}`);
  const literal = Object.fromEntries(Object.entries(env).filter(([, v]) => !v.startsWith('from:')));
  const { config } = loadNodeConfig(literal, []);
  t.is(config.terminationDeadline, 25_000);
  const ports = ds.spec.template.spec.containers[0].ports.map((p: any) => p.containerPort).sort();
  t.deepEqual(ports, [15008, 15020, 15021]);
  t.is(ds.spec.template.spec.containers[0].readinessProbe.httpGet.path, '/healthz/ready');
  t.deepEqual(ds.spec.template.spec.containers[0].securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW']);
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
