import test from 'ava';
import { TestMesh, waitUntil, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, exchange, type EchoServer } from '../../helpers/echo-server';
import { socksConnect } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';

/**
 * Dry-run AuthorizationPolicies through two real node proxies: a dry-run DENY that matches
 * the client never refuses it (the bytes arrive), while the destination proxy logs the match
 * with the policy and the would-be decision and counts it; a dry-run ALLOW is reported as
 * "allow"; an enforced policy still decides.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);

// A fresh object per policy: the YAML writer would turn a shared one into an alias.
const rule = (): unknown => [[[{ principals: [{ Exact: 'cluster.local/ns/default/sa/client' }] }]]];
const POLICIES = [
  { name: 'trial-deny-client', namespace: 'default', scope: 'WorkloadSelector', action: 'Deny', dryRun: true, rules: rule() },
  { name: 'trial-allow-client', namespace: 'default', scope: 'WorkloadSelector', action: 'Allow', dryRun: true, rules: rule() },
];

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig({
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'server', ips: [SERVER], node: 'node-b', authorizationPolicies: ['default/trial-deny-client', 'default/trial-allow-client'] },
    ],
    policies: POLICIES,
  });
  await mesh.startCa();
  app = await startEchoServer(SERVER, 8080);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
  b = await mesh.startNode('node-b', { INBOUND_PLAINTEXT_ADDR: '' });
});

test.after.always(async () => {
  await mesh?.close();
  await app?.close();
});

test('a matching dry-run DENY is logged and counted on the data path, never enforced', async (t) => {
  const s = await socksConnect(a.listener('socks5'), { host: SERVER, port: 8080 }, CLIENT);
  t.is((await exchange(s, Buffer.from('still allowed'))).toString(), 'still allowed');
  await waitUntil(() => b.logs.find((l) => l['msg'] === 'dry-run policy matched').length === 2, 5000, () => 'dry-run log lines');
  const lines = b.logs.find((l) => l['msg'] === 'dry-run policy matched');
  t.like(lines.find((l) => l['policy'] === 'default/trial-deny-client'), { scope: 'authz', decision: 'deny', enforced: 'allow', 'src.identity': 'spiffe://cluster.local/ns/default/sa/client', 'dst.addr': `${SERVER}:8080`, 'dst.workload': 'server', level: 'info' });
  t.like(lines.find((l) => l['policy'] === 'default/trial-allow-client'), { decision: 'allow', enforced: 'allow' });
  const m = await b.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_dry_run_policy_matches_total', { policy: 'default/trial-deny-client', decision: 'deny' }), 1);
  t.is(sumSamples(m, 'ztunnel_ts_dry_run_policy_matches_total', { policy: 'default/trial-allow-client', decision: 'allow' }), 1);
  t.is(sumSamples(m, 'istio_tcp_connections_failed_total'), 0);
  t.is(b.access('connection complete').filter((l) => l['direction'] === 'inbound').length, 1, 'the connection completed normally');
});
