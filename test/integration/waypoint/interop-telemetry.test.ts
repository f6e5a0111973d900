import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WaypointMesh, get, startHttpApp } from './harness';
import { waitUntil } from '../../helpers/node-harness';
import { hasOpenssl } from '../../helpers/openssl';
import { REQUEST_LABELS } from '../../../src/telemetry/request-metrics';

/**
 * An independent HBONE client (python3-h2) through the waypoint, and the exact request
 * metrics labels and access-log fields of one request.
 */
const m = new WaypointMesh();
const ROOT = join(__dirname, '..', '..', '..', '..');

test.before(async () => {
  m.track(await startHttpApp(m.V1, 8080, 'v1'));
  m.track(await startHttpApp(m.V2, 8080, 'v2'));
  await m.start(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: server, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: server }]
  rules: [{ backendRefs: [{ name: server-v1, port: 80 }] }]
`);
});

test.after.always(() => m.close());

/** The payload of an HTTP/1.1 chunked body. */
function dechunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const nl = s.indexOf('\r\n', i);
    const n = parseInt(s.slice(i, nl), 16);
    if (!(n > 0)) return out;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
}

function hasPythonH2(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import h2'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test.serial('python3-h2 sends HTTP/2 CONNECT with a mesh client certificate and an HTTP/1.1 request inside', async (t) => {
  if (!hasPythonH2() || !hasOpenssl()) {
    t.log('skipped: needs /usr/bin/python3 with python3-h2, and openssl');
    t.pass();
    return;
  }
  // A client leaf for spiffe://cluster.local/ns/default/sa/client signed by the dev CA's root with openssl.
  const dir = mkdtempSync(join(tmpdir(), 'wp-py-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caDir = join(m.mesh.dir, 'ca');
  const f = (n: string): string => join(dir, n);
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('key.pem')], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', f('key.pem'), '-subj', '/O=python-client', '-out', f('csr.pem')], { stdio: 'ignore' });
  writeFileSync(f('ext'), 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/client\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nbasicConstraints=critical,CA:FALSE\n');
  execFileSync('openssl', ['x509', '-req', '-in', f('csr.pem'), '-CA', join(caDir, 'root-cert.pem'), '-CAkey', join(caDir, 'root-key.pem'), '-set_serial', '4242', '-days', '1', '-extfile', f('ext'), '-out', f('cert.pem')], { stdio: 'ignore' });
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      '/usr/bin/python3',
      [join(ROOT, 'test/fixtures/waypoint/h2_connect_client.py'), m.WP, '15008', m.CLIENT, `${m.VIP}:80`, join(caDir, 'root-cert.pem'), f('cert.pem'), f('key.pem'), '/from-python'],
      { timeout: 20_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    ),
  );
  const [status, ...rest] = out.split('\n');
  t.is(status, '200', out);
  const response = rest.join('\n');
  t.regex(response, /^HTTP\/1\.1 200 OK/);
  const head = response.slice(0, response.indexOf('\r\n\r\n'));
  let raw = response.slice(head.length + 4);
  if (/transfer-encoding: chunked/i.test(head)) raw = dechunk(raw);
  const body = JSON.parse(raw);
  t.is(body.app, 'v1');
  t.is(body.url, '/from-python');

  // An authority the waypoint does not serve is refused like the node proxy does: 400.
  const refused = await new Promise<string>((resolve) =>
    execFile('/usr/bin/python3', [join(ROOT, 'test/fixtures/waypoint/h2_connect_client.py'), m.WP, '15008', m.CLIENT, `${m.VIP_V1}:80`, join(caDir, 'root-cert.pem'), f('cert.pem'), f('key.pem'), '/'], { timeout: 20_000 }, (_e, stdout) => resolve(stdout)),
  );
  t.is(refused.split('\n')[0], '400');
});

test.serial('one request: every istio_requests_total label and every access-log field, exactly', async (t) => {
  const fwd = await m.forwarder({ host: m.VIP, port: 80 });
  const before = m.requestLogs().length;
  const expectLogs = before + 2;
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const r = await get(fwd, '/exact?x=1', { 'x-request-id': 'exact-1', 'user-agent': 'exact-test', traceparent: tp });
  t.is(r.status, 200);
  // The trace continues (same trace id and flags) with this hop's own span id.
  t.regex(r.body.headers['traceparent'], /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  t.not(r.body.headers['traceparent'], tp);
  const fresh = await get(fwd, '/no-ids');
  t.regex(fresh.body.headers['x-request-id'], /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'x-request-id generated when absent');
  t.regex(fresh.body.headers['traceparent'], /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'a trace is started when none came');
  await waitUntil(() => m.requestLogs().length >= expectLogs, 5000, () => 'log');
  const series = (await m.wpMetrics()).samples.filter((s) => s.name === 'istio_requests_total' && s.labels['response_code'] === '200');
  const labels = series.find((s) => s.labels['destination_service_name'] === 'server-v1')!.labels;
  t.is(series.length, 1, 'one series for all of this client\'s requests to server-v1');
  t.deepEqual(Object.keys(labels).sort(), [...REQUEST_LABELS].sort());
  t.deepEqual(labels, {
    reporter: 'waypoint',
    source_workload: 'client-deploy',
    source_canonical_service: 'client-app',
    source_canonical_revision: 'v1',
    source_workload_namespace: 'default',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    source_app: 'client-app',
    source_version: 'v1',
    source_cluster: 'cluster1',
    destination_service: 'server-v1.default.svc.cluster.local',
    destination_service_namespace: 'default',
    destination_service_name: 'server-v1',
    destination_workload: 'server-v1-deploy',
    destination_canonical_service: 'server-v1-app',
    destination_canonical_revision: 'v1',
    destination_workload_namespace: 'default',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/server',
    destination_app: 'server-v1-app',
    destination_version: 'v1',
    destination_cluster: 'cluster1',
    request_protocol: 'http',
    response_code: '200',
    grpc_response_status: '',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  });
  const line = m.requestLogs().find((l) => l['x_request_id'] === 'exact-1')!;
  const { time: _time, level, duration, ...fields } = line;
  t.is(level, 'info');
  t.regex(String(duration), /^\d+ms$/);
  const srcAddr = String(fields['src.addr']);
  t.regex(srcAddr, new RegExp(`^${m.CLIENT.replace(/\./g, '\\.')}:\\d+$`));
  t.deepEqual(fields, {
    component: 'waypoint',
    waypoint: 'default/waypoint',
    scope: 'access',
    'src.addr': srcAddr,
    'src.workload': 'client',
    'src.namespace': 'default',
    'src.identity': 'spiffe://cluster.local/ns/default/sa/client',
    'dst.addr': `${m.VIP}:80`,
    'dst.service': 'server-v1.default.svc.cluster.local',
    'dst.workload': 'server-v1',
    'dst.namespace': 'default',
    'dst.identity': 'spiffe://cluster.local/ns/default/sa/server',
    upstream_host: `${m.V1}:8080`,
    method: 'GET',
    authority: 'server.default.svc.cluster.local',
    path: '/exact?x=1',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    response_code_details: 'via_upstream',
    bytes_received: 0,
    bytes_sent: r.text.length,
    x_request_id: 'exact-1',
    route: 'HTTPRoute/default/server#0',
    msg: 'request complete',
  });
});

test.serial('/config_dump shows routes, policies and the per-service binding; /debug/explain names route, backend and policy', async (t) => {
  const admin = m.wp.runtime.currentAddresses().admin!;
  const fetchJson = async (path: string): Promise<any> => JSON.parse((await get({ ip: admin.ip, port: admin.port, family: 4 }, path)).text);
  const dump = await fetchJson('/config_dump');
  t.deepEqual(dump.l7.routes.map((r: { name: string }) => r.name), ['default/server']);
  const binding = dump.l7.bindings.find((b: { service: string }) => b.service === 'default/server.default.svc.cluster.local');
  t.deepEqual(binding.ports.find((p: { port: number }) => p.port === 80).routes, ['HTTPRoute/default/server']);
  t.is(dump.identity.identity, 'spiffe://cluster.local/ns/default/sa/waypoint');
  const ex = await fetchJson(`/debug/explain?dst=${m.VIP}:80&path=/x&src=spiffe://cluster.local/ns/default/sa/client`);
  t.like(ex, { outcome: 'forward', route: { kind: 'HTTPRoute', name: 'default/server', rule: 0 }, backend: { service: 'default/server-v1.default.svc.cluster.local', port: 80 }, authorization: { allowed: true, policy: null } });
});
