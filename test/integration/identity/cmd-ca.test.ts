import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IstioCaClient } from '../../../src/identity/ca-client';
import { generateCsr } from '../../../src/identity/csr';
import { SpiffeId } from '../../../src/identity/spiffe';

const MAIN = join(__dirname, '..', '..', '..', 'src', 'cli', 'main.js');

interface Running {
  proc: ChildProcess;
  address: string;
  output: () => string;
}

async function startCli(args: string[]): Promise<Running> {
  const proc = spawn(process.execPath, [MAIN, 'ca', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15s:\n${out}`)), 15_000);
    const check = (): void => {
      const m = /ztunnel-ts ca: listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => reject(new Error(`ca exited with ${code}:\n${out}`)));
  });
  return { proc, address, output: () => out };
}

function stop(r: Running): Promise<number | null> {
  return new Promise((resolve) => {
    if (r.proc.exitCode !== null) return resolve(r.proc.exitCode);
    r.proc.once('exit', (code) => resolve(code));
    r.proc.kill('SIGTERM');
  });
}

test('`ztunnel-ts ca` creates a root on first start, serves CreateCertificate, drains on SIGTERM, reloads the root', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztunnel-ts-cli-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, '- token: app-token\n  namespace: default\n  serviceAccount: app\n  node: node-a\n');
  const args = ['--ca-listen-addr', '127.0.0.1:0', '--ca-dir', join(dir, 'ca'), '--ca-tokens', tokens, '--log-format', 'json'];
  const first = await startCli(args);
  t.teardown(() => void (first.proc.exitCode === null && first.proc.kill('SIGKILL')));
  t.regex(first.address, /^127\.0\.0\.1:\d+$/);
  const rootPath = join(dir, 'ca', 'root-cert.pem');
  t.true(first.output().includes(`CA_ROOT_CA=${rootPath}`));
  t.is(statSync(join(dir, 'ca', 'root-key.pem')).mode & 0o777, 0o600, 'root key is private to the owner');
  const id = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
  const c = new IstioCaClient({ address: first.address, rootCa: rootPath, altHostname: null, authToken: 'app-token', clusterId: 'Kubernetes' });
  t.teardown(() => c.close());
  const res = await c.createCertificate({ identity: id, csrPem: generateCsr(id).csrPem, impersonate: false, validitySeconds: 600 });
  t.is(new X509Certificate(res.chainPem[0] as string).subjectAltName, `URI:${id}`);
  c.close();
  t.is(await stop(first), 0, 'SIGTERM drains and exits 0');
  const lines = first.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.truthy(lines.find((l) => l['msg'] === 'created dev root CA'));
  t.truthy(lines.find((l) => l['msg'] === 'issued certificate' && l['identity'] === id.toString()));
  t.truthy(lines.find((l) => l['msg'] === 'dev CA stopped'));
  t.false(first.output().includes('PRIVATE KEY'));

  const rootBefore = readFileSync(rootPath, 'utf8');
  const second = await startCli(args);
  t.teardown(() => void (second.proc.exitCode === null && second.proc.kill('SIGKILL')));
  t.is(readFileSync(rootPath, 'utf8'), rootBefore, 'the existing root is loaded, not replaced');
  t.regex(second.output(), /loaded dev root CA/);
  t.is(await stop(second), 0);
});

test('`ztunnel-ts ca` rejects a bad flag value naming the key', async (t) => {
  const proc = spawn(process.execPath, [MAIN, 'ca', '--ca-max-ttl', 'forever'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  t.is(code, 2);
  t.regex(err, /--ca-max-ttl="forever": expected a duration/);
});
