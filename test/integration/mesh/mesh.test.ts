import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMeshConfig, MeshConfigError } from '../../../src/mesh/mesh-config';

const ROOT = resolve(__dirname, '../../../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');

test('`ztunnel-ts mesh examples/mesh.yaml --mesh-self-check-only` runs the whole local mesh and exits 0', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'zt-mesh-test-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const proc = spawn(process.execPath, [CLI, 'mesh', 'examples/mesh.yaml', '--mesh-self-check-only'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', MESH_STATE_DIR: stateDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((r, reject) => {
    const timer = setTimeout(() => reject(new Error(`mesh did not finish in 90s:\n${out}`)), 90_000);
    proc.on('exit', (c) => {
      clearTimeout(timer);
      r(c);
    });
  });
  t.log(out);
  t.is(code, 0, out);
  t.regex(out, /PASS {2}allowed \(pod IP, HBONE across nodes\)/);
  t.regex(out, /PASS {2}denied by policy default\/deny-untrusted: refused by policy \(SOCKS reply 0x02\)/);
  t.regex(out, /PASS {2}passthrough to a non-mesh address/);
  t.regex(out, /PASS {2}waypoint: HTTPRoute splits reviews 90\/10 over 200 requests: 200 requests: reviews-v1=\d+ reviews-v2=\d+/);
  t.regex(out, /PASS {2}waypoint: header x-canary=true goes to reviews-v2: 10 requests: reviews-v2=10/);
  t.regex(out, /PASS {2}waypoint: L7 policy default\/reviews-deny-admin answers \/admin with 403: HTTP 403 in \d+ms: RBAC: access denied/);
  t.regex(out, /PASS {2}reviews pod direct \(bypassing the waypoint\) denied/);
  t.regex(out, /waypoint default\/waypoint ready on 127\.0\.4\.10:15008/);
  t.regex(out, /PASS {2}live edit: a DENY policy added to the served file denies default\/client-a → 127\.0\.2\.10:8080, removing it allows again \(no restart\): denied \d+ms after the edit/);
  t.regex(out, /local upstream resolver on 127\.0\.5\.53:15353/);
  t.regex(out, /PASS {2}dns: a Service hostname resolves to its VIP: server\.default\.svc\.cluster\.local A → NOERROR aa 127\.0\.10\.1/);
  t.regex(out, /PASS {2}dns: a short name resolves in the client's namespace: server A → NOERROR aa 127\.0\.10\.1/);
  t.regex(out, /PASS {2}dns: a wildcard host \(\*\.apps\.example\) resolves to its VIP: api\.apps\.example A → NOERROR aa 127\.0\.10\.5/);
  t.regex(out, /PASS {2}dns: a name outside the mesh is forwarded to the upstream resolver: legacy\.example\.org A → NOERROR aa 127\.0\.3\.10/);
  t.regex(out, /dig @127\.0\.1\.10 -p 15053 server\.default\.svc\.cluster\.local/);
  t.regex(out, /curl --interface 127\.0\.1\.10 --socks5 127\.0\.1\.1:15080 --resolve server\.default\.svc\.cluster\.local:80:\$\(dig \+short @127\.0\.1\.10 -p 15053 server\.default\.svc\.cluster\.local\) http:\/\/server\.default\.svc\.cluster\.local:80\//);
  t.regex(out, /PASS {2}dns: curl by name \(resolved by the DNS proxy, then through the mesh\): server\.default\.svc\.cluster\.local A → NOERROR aa 127\.0\.10\.1 in \d+ms; then GET http:\/\/server\.default\.svc\.cluster\.local:80\/ via 127\.0\.10\.1: HTTP 200: hello from server-/);
  t.regex(out, /all 16 checks passed/);
  t.regex(out, /curl --interface 127\.0\.1\.10 --socks5 127\.0\.1\.1:15080 http:\/\/127\.0\.2\.10:8080\//);
});

test('a bad mesh file is rejected with every problem named, before anything starts', (t) => {
  const err = t.throws(() =>
    parseMeshConfig(
      'nodes:\n  - { name: A_B, ip: 10.0.0.1 }\nselfCheck:\n  - { via: nowhere, from: x, to: "y", expect: maybe }\nworkloads:\n  - { uid: u, name: w, namespace: default, node: node-z, bogus: 1 }\nextra: 1\n',
      'bad.yaml',
    ),
  );
  t.true(err instanceof MeshConfigError);
  const m = err!.message;
  t.regex(m, /extra: unknown key/);
  t.regex(m, /nodes\[0\]\.name/);
  t.regex(m, /nodes\[0\]\.ip: "10\.0\.0\.1" must be an IPv4 loopback address/);
  t.regex(m, /selfCheck\[0\]\.via/);
  t.regex(m, /selfCheck\[0\]\.expect/);
  t.regex(m, /bogus/);
});
