import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../../src/cli/main';
import { explain, type ExplainResult } from '../../../src/policy/explain';
import { explainHandler, renderExplain } from '../../../src/policy/explain-render';
import { parseLocalConfig } from '../../../src/state/local-config';
import { StateUpdater } from '../../../src/state/proxy-state';
import { fixturesDir, loopbackConfig, seeded } from '../state/builders';

const meshFile = path.join(fixturesDir, 'mesh.yaml');

function mesh(): StateUpdater {
  const r = parseLocalConfig(readFileSync(meshFile, 'utf8'), 'mesh.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const u = new StateUpdater();
  u.source('test').replaceAll(r.value);
  return u;
}

function run(u: StateUpdater, srcIp: string, dst: string, identity?: string): ExplainResult {
  const r = explain(u.view, { srcIp, dst, network: '', random: seeded(3), ...(identity !== undefined ? { identity } : {}) });
  if ('invalid' in r) throw new Error(r.invalid);
  return r;
}

test('service VIP: direct HBONE hop and the authorization at the endpoint with every policy evaluated', (t) => {
  const r = run(mesh(), '10.0.0.1', '10.96.0.10:80');
  t.deepEqual(r.source, { ip: '10.0.0.1', workload: 'Kubernetes//Pod/shop/client', identity: 'spiffe://cluster.local/ns/shop/sa/client' });
  t.deepEqual(r.destination, { addr: '10.96.0.10:80', kind: 'service', name: 'shop/cart.shop.svc.cluster.local' });
  t.is(r.outcome, 'hbone');
  t.deepEqual(r.hops, [
    {
      type: 'direct-hbone',
      from: 'Kubernetes//Pod/shop/client (10.0.0.1)',
      nextHop: '10.0.1.1:15008',
      authority: '10.0.1.1:8080',
      expectedSans: ['spiffe://cluster.local/ns/shop/sa/cart', 'spiffe://cluster.local/ns/shop/sa/cart-san'],
      to: 'Kubernetes//Pod/shop/cart-1',
      note: 'load-balanced endpoint of shop/cart.shop.svc.cluster.local',
    },
  ]);
  t.like(r.authorization, { destination: 'Kubernetes//Pod/shop/cart-1', peerIp: '10.0.0.1', peerIdentity: 'spiffe://cluster.local/ns/shop/sa/client', targetPort: 8080 });
  t.like(r.authorization?.decision, { allowed: true, policy: 'shop/allow-client', why: 'allowed by: shop/allow-client' });
  t.deepEqual(r.authorization?.evaluated, [
    { policy: 'shop/allow-client', action: 'Allow', scope: 'Namespace', dryRun: false, matched: true },
    { policy: 'istio-system/deny-ops', action: 'Deny', scope: 'Global', dryRun: true, matched: false },
    { policy: 'istio-system/istio_converted_static_strict', action: 'Deny', scope: 'WorkloadSelector', dryRun: false, matched: false },
  ]);
});

test('service with a waypoint: two hops, and the destination authorizes the WAYPOINT identity (so a client-only ALLOW denies)', (t) => {
  const r = run(mesh(), '10.0.0.1', '10.96.0.11:80');
  t.is(r.hops.length, 2);
  t.like(r.hops[0], { type: 'waypoint', nextHop: '10.0.3.1:15008', authority: '10.96.0.11:80', to: 'Kubernetes//Pod/shop/waypoint' });
  t.deepEqual(r.hops[0]?.expectedSans, ['spiffe://cluster.local/ns/shop/sa/waypoint', 'spiffe://cluster.local/ns/shop/sa/waypoint-san']);
  t.like(r.hops[1], { type: 'waypoint-forward', from: 'Kubernetes//Pod/shop/waypoint (10.0.3.1)', nextHop: '10.0.1.2:15008', authority: '10.0.1.2:8081', to: 'Kubernetes//Pod/shop/cart-2' });
  t.like(r.authorization, { peerIp: '10.0.3.1', peerIdentity: 'spiffe://cluster.local/ns/shop/sa/waypoint', targetPort: 8081 });
  t.like(r.authorization?.decision, { allowed: false, policy: null, why: 'allow policies exist, but none allowed' });
});

test('unmeshed source to a STRICT pod: plaintext hop, no identity, denied by the static STRICT policy', (t) => {
  const r = run(mesh(), '192.0.2.50', '10.0.1.1:8080');
  t.is(r.outcome, 'plaintext');
  t.is(r.source.workload, null);
  t.like(r.hops[0], { type: 'plaintext', nextHop: '10.0.1.1:8080', to: 'Kubernetes//Pod/shop/cart-1' });
  t.like(r.authorization, { peerIdentity: null });
  t.like(r.authorization?.decision, { allowed: false, policy: 'istio-system/istio_converted_static_strict', why: 'explicitly denied by: istio-system/istio_converted_static_strict' });
});

test('an assumed identity overrides the source workload; "none" means plaintext', (t) => {
  const u = mesh();
  const asOps = run(u, '10.0.0.1', '10.0.1.1:8080', 'spiffe://cluster.local/ns/ops/sa/admin');
  t.is(asOps.source.identity, 'spiffe://cluster.local/ns/ops/sa/admin');
  t.deepEqual(asOps.authorization?.decision.dryRunWouldDeny, ['istio-system/deny-ops'], 'the dry-run DENY would have fired');
  t.false(asOps.authorization?.decision.allowed);
  const none = run(u, '10.0.0.1', '10.0.1.1:8080', 'none');
  t.is(none.source.identity, null);
  t.like(none.authorization?.decision, { policy: 'istio-system/istio_converted_static_strict' });
});

test('passthrough and errors have no destination authorization; bad input is named', (t) => {
  const u = mesh();
  const p = run(u, '10.0.0.1', '198.51.100.1:443');
  t.is(p.outcome, 'passthrough');
  t.is(p.authorization, null);
  const e = run(u, '10.0.0.1', '10.96.0.10:443');
  t.deepEqual(e.error, { reason: 'NO_HEALTHY_UPSTREAM', message: 'service shop/cart.shop.svc.cluster.local has no port 443' });
  t.deepEqual(explain(u.view, { srcIp: 'x', dst: '10.0.0.1:80', network: '' }), { invalid: 'source "x" is not an IP address' });
  t.deepEqual(explain(u.view, { srcIp: '10.0.0.1', dst: '10.0.0.1', network: '' }), { invalid: 'destination "10.0.0.1" is not ip:port' });
  t.deepEqual(explain(u.view, { srcIp: '10.0.0.1', dst: '10.0.0.1:1', network: '', identity: 'bob' }), { invalid: 'identity "bob" is not spiffe://<td>/ns/<ns>/sa/<sa>' });
});

test('human-readable rendering names hops, SANs, the decision and each policy', (t) => {
  const text = renderExplain(run(mesh(), '10.0.0.1', '10.96.0.10:80'));
  t.is(
    text,
    [
      'source:      10.0.0.1  workload Kubernetes//Pod/shop/client',
      'identity:    spiffe://cluster.local/ns/shop/sa/client',
      'destination: 10.96.0.10:80  service shop/cart.shop.svc.cluster.local',
      'outcome:     hbone',
      'hops:',
      '  1. direct-hbone: Kubernetes//Pod/shop/client (10.0.0.1) -> 10.0.1.1:15008 [Kubernetes//Pod/shop/cart-1]',
      '     authority: 10.0.1.1:8080',
      '     expected SANs: spiffe://cluster.local/ns/shop/sa/cart, spiffe://cluster.local/ns/shop/sa/cart-san',
      '     load-balanced endpoint of shop/cart.shop.svc.cluster.local',
      'authorization at Kubernetes//Pod/shop/cart-1 (peer 10.0.0.1, identity spiffe://cluster.local/ns/shop/sa/client, port 8080):',
      '  decision: ALLOW: allowed by: shop/allow-client',
      '  - shop/allow-client Allow scope=Namespace: matched <- decides',
      '  - istio-system/deny-ops Deny (dry-run) scope=Global: no match',
      '  - istio-system/istio_converted_static_strict Deny scope=WorkloadSelector: no match',
      '',
    ].join('\n'),
  );
});

function cliIo(argv: string[]) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  return { io: { env: {}, argv, stdout: out, stderr: err, onSignal: () => () => undefined }, get: () => ({ stdout, stderr }) };
}

test('CLI: ztunnel-ts explain prints the plain report, or JSON with --log-format json', async (t) => {
  const plain = cliIo(['explain', '--local-xds-path', loopbackConfig, '--explain-source', '127.0.0.2', '--explain-destination', '127.0.0.1:9999']);
  t.is(await main(plain.io), 0);
  t.regex(plain.get().stdout, /decision: DENY: allow policies exist, but none allowed\n {2}- demo\/all-but-9999 Allow scope=Namespace: no match\n/);
  const json = cliIo(['explain', `--local-xds-path=${meshFile}`, '--explain-source=10.0.0.1', '--explain-destination=10.0.4.1:5432', '--log-format=json']);
  t.is(await main(json.io), 0);
  const parsed = JSON.parse(json.get().stdout) as ExplainResult;
  t.is(parsed.hops[0]?.type, 'waypoint');
  t.is(parsed.hops[1]?.to, 'Kubernetes//Pod/shop/db');
});

test('CLI: a bad config file exits 1 listing every error; missing flags exit 2', async (t) => {
  const bad = cliIo(['explain', '--local-xds-path', path.join(fixturesDir, 'invalid-many.yaml'), '--explain-source', '1.1.1.1', '--explain-destination', '2.2.2.2:80']);
  t.is(await main(bad.io), 1);
  const lines = bad.get().stderr.trim().split('\n');
  t.is(lines.length, 14);
  t.regex(lines[2] ?? '', /invalid-many\.yaml:6:13: workloads\[0\]\.protocol: "HBONES" is not valid; expected one of HBONE, TCP$/);
  const missing = cliIo(['explain']);
  t.is(await main(missing.io), 2);
  t.regex(missing.get().stderr, /--explain-source="": expected the source IP/);
});

test('admin handler /debug/explain answers JSON and names bad parameters', async (t) => {
  const u = mesh();
  const handler = explainHandler(u.view, '');
  const server = createServer((req, res) => void handler(req, res, new URL(req.url ?? '/', 'http://x')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ok = await fetch(`${base}/debug/explain?src=10.0.0.1&dst=10.96.0.10:80`);
  t.is(ok.status, 200);
  const body = (await ok.json()) as ExplainResult;
  t.is(body.authorization?.decision.policy, 'shop/allow-client');
  const bad = await fetch(`${base}/debug/explain?src=10.0.0.1`);
  t.is(bad.status, 400);
  t.regex(((await bad.json()) as { error: string }).error, /dst=<ip:port> are required/);
  const inval = await fetch(`${base}/debug/explain?src=nope&dst=10.0.0.1:80`);
  t.deepEqual(await inval.json(), { error: 'source "nope" is not an IP address' });
});
