import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { TestMesh, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { httpRequest } from '../../helpers/http';

/**
 * /config_dump in ztunnel's shape: every field the project's shape fixture (written from
 * ztunnel's admin dump structs and workload/service serialisation) names is there with its
 * JSON type, certificates as ztunnel encodes them, and our own extras only under their own
 * top-level keys.
 */
type Shape = Record<string, string>;
const FIXTURE = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../test/fixtures/config-dump/ztunnel-shape.json'), 'utf8')) as Record<string, Shape | string>;
const OUR_EXTRAS = ['listeners', 'pools', 'hbone_server', 'proxy', 'local_config', 'stateVersion', 'workers'];

/** Problems of `value` against a type spec ('string', 'array:cert', 'map:x', 'gateway?', ...). */
function check(value: unknown, spec: string, at: string): string[] {
  if (spec.endsWith('?')) return value === null ? [] : check(value, spec.slice(0, -1), at);
  const [kind, inner] = spec.split(':') as [string, string | undefined];
  if (kind === 'array') {
    if (!Array.isArray(value)) return [`${at}: expected an array, got ${JSON.stringify(value)?.slice(0, 60)}`];
    return inner ? value.flatMap((v, i) => check(v, inner, `${at}[${i}]`)) : [];
  }
  if (kind === 'map') {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected an object`];
    return Object.entries(value).flatMap(([k, v]) => check(v, inner as string, `${at}.${k}`));
  }
  if (kind === 'string' || kind === 'number' || kind === 'boolean') return typeof value === kind ? [] : [`${at}: expected ${kind}, got ${JSON.stringify(value)?.slice(0, 60)}`];
  if (kind === 'object') return value && typeof value === 'object' && !Array.isArray(value) ? [] : [`${at}: expected an object`];
  const shape = FIXTURE[kind];
  if (typeof shape !== 'object') return [`fixture has no shape ${kind}`];
  if (!value || typeof value !== 'object') return [`${at}: expected a ${kind} object`];
  return Object.entries(shape).flatMap(([field, s]) => (field in value ? check((value as Record<string, unknown>)[field], s, `${at}.${field}`) : [`${at}: missing ${field}`]));
}

const ip = loopbackBlock();
const CLIENT = ip(10);
const SERVER = ip(20);
const VIP = ip(100);
let mesh: TestMesh;
let a: TestNode;

test.before(async () => {
  mesh = new TestMesh(['node-a']);
  mesh.writeConfig({
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a', authorizationPolicies: ['default/deny-x'] },
      { name: 'server', ips: [SERVER], node: 'node-b', services: { 'default/echo.default.svc.cluster.local': { 80: 8080 } } },
    ],
    services: [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: VIP, ports: { 80: 8080 } }],
    policies: [{ name: 'deny-x', namespace: 'default', scope: 'WorkloadSelector', action: 'Deny', dryRun: false, rules: [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/x' }] }]]] }],
  });
  await mesh.startCa();
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: '', INBOUND_PLAINTEXT_ADDR: '' });
});

test.after.always(async () => {
  await mesh?.close();
});

test("/config_dump has ztunnel's shape: every field and type of the fixture, extras only under our own keys", async (t) => {
  const r = await httpRequest(a.addrs.admin!, '/config_dump');
  t.is(r.status, 200);
  const dump = JSON.parse(r.body) as Record<string, unknown>;
  t.deepEqual(check(dump, 'top', 'dump'), []);
  t.deepEqual(Object.keys(dump).filter((k) => !(k in (FIXTURE['top'] as Shape)) && !OUR_EXTRAS.includes(k)), [], 'no other top-level keys');
  t.is((dump['workloads'] as unknown[]).length, 2);
  const svc = (dump['services'] as { vips: string[]; endpoints: Record<string, { port: Record<string, number> }> }[])[0]!;
  t.deepEqual(svc.vips, [`/${VIP}`], 'network/ip');
  t.deepEqual(Object.values(svc.endpoints).map((e) => e.port), [{ 80: 8080 }]);
  t.deepEqual(dump['workloadState'], { 'cluster1//v1/Pod/default/client': { state: 'Up', info: { name: 'client', namespace: 'default', serviceAccount: 'client' } } });
  t.false(r.body.includes('PRIVATE KEY'));
});

test('certificates are encoded as ztunnel does: state spelling, base64 PEM, decimal serial, RFC 3339 seconds', async (t) => {
  const dump = JSON.parse((await httpRequest(a.addrs.admin!, '/config_dump')).body) as { certificates: { identity: string; state: string; certChain: { pem: string; serialNumber: string; validFrom: string; expirationTime: string }[]; rootCerts: { pem: string }[] }[] };
  t.is(dump.certificates.length, 1);
  const c = dump.certificates[0]!;
  t.is(c.identity, 'spiffe://cluster.local/ns/default/sa/client');
  t.is(c.state, 'Available');
  const leafPem = Buffer.from(c.certChain[0]!.pem, 'base64').toString('utf8');
  t.regex(leafPem, /^-----BEGIN CERTIFICATE-----\n/);
  const leaf = new X509Certificate(leafPem);
  t.is(c.certChain[0]!.serialNumber, BigInt(`0x${leaf.serialNumber}`).toString(10));
  t.regex(c.certChain[0]!.validFrom, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.is(Date.parse(c.certChain[0]!.expirationTime), Date.parse(leaf.validTo));
  t.is(Buffer.from(c.rootCerts[0]!.pem, 'base64').toString('utf8'), fs.readFileSync(path.join(mesh.dir, 'ca', 'root-cert.pem'), 'utf8'));
});
