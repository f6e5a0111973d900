import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const main = path.resolve(__dirname, '../../../src/cli/main.js');

/** Runs `ztunnel-ts node` with the env given; resolves its exit code and stderr (killed after 20 s). */
function runNode(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, 'node'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test('ztunnel-ts node exits non-zero at start-up on a bad LOCAL_XDS_PATH, listing every error with path, line, column and what was expected', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ztunnel-ts-startup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'workloads:\n- {uid: a, name: a}\n- {uid: b, name: b, namespace: n, protocol: UDP, workloadIps: [10.0.0.300]}\n');
  const r = await runNode({ LOCAL_XDS_PATH: file, NODE_NAME: 'n1', ADMIN_ADDR: '127.0.0.1:0', STATS_ADDR: '127.0.0.1:0', READINESS_ADDR: '127.0.0.1:0' });
  t.is(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  t.is(lines[0], `ztunnel-ts node: ${file} is invalid (no earlier good state to keep; fix it and start again):`);
  t.deepEqual(lines.slice(1), [
    `  ${file}:2:3: workloads[0].namespace: required field is missing (expected a string)`,
    `  ${file}:3:45: workloads[1].protocol: "UDP" is not valid; expected one of HBONE, TCP`,
    `  ${file}:3:64: workloads[1].workloadIps[0]: "10.0.0.300" is not an IP address (expected e.g. 10.0.0.1 or fd00::1)`,
  ]);

  writeFileSync(file, '');
  const empty = await runNode({ LOCAL_XDS_PATH: file, NODE_NAME: 'n1', ADMIN_ADDR: '127.0.0.1:0', STATS_ADDR: '127.0.0.1:0', READINESS_ADDR: '127.0.0.1:0' });
  t.is(empty.code, 1);
  t.regex(empty.stderr, /bad\.yaml:1:1: the config is empty; an empty state is written "workloads: \[\]"/);
});
