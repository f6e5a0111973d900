import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import * as path from 'node:path';
import { makeSocketAddr, type SocketAddr } from '../../src/util/socket-addr';
import type { TestMesh } from './node-harness';
import { parsePrometheusText, type ParsedMetrics } from './prom-text';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');

/** A node proxy running as its own process (`ztunnel-ts node`), so a test can freeze or kill it. */
export interface ChildNode {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  access(msg: string): Record<string, unknown>[];
  /** A listener from the 'started' line (`socks5`, `inbound`, …), optionally on a workload IP. */
  listener(name: string, ip?: string): SocketAddr;
  metrics(): Promise<ParsedMetrics>;
}

/**
 * Starts `ztunnel-ts node` with the mesh's node environment plus `env`, waits until it is
 * ready, and SIGKILLs it (and SIGCONTs it first, in case a test froze it) in teardown.
 * `ulimitFiles` raises the descriptor limit of the child through the shell first.
 */
export async function spawnChildNode(t: ExecutionContext, mesh: TestMesh, name: string, env: Record<string, string> = {}, ulimitFiles?: number): Promise<ChildNode> {
  const fullEnv = { PATH: process.env['PATH'] ?? '', ...mesh.nodeEnv(name, { LOG_FORMAT: 'json', ...env }) };
  const proc = ulimitFiles
    ? spawn('/bin/sh', ['-c', `ulimit -n ${ulimitFiles} && exec "$0" "$1" node`, process.execPath, CLI], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI, 'node'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdout!.on('data', (c: Buffer) => {
    partial += c.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (!l.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a line that is not JSON (never expected with LOG_FORMAT=json); ignored
      }
    }
  });
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setInterval(() => {
      const s = lines.find((l) => l['msg'] === 'started');
      if (s) {
        clearInterval(timer);
        resolve(s);
      }
    }, 20);
    proc.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`${name} exited ${String(code)} before it started: ${stderr}`));
    });
  });
  const ready = parseAddr(String(started['readiness']));
  const stats = parseAddr(String(started['stats']));
  const until = Date.now() + 20_000;
  while ((await httpStatus(ready, '/healthz/ready')) !== 200) {
    if (Date.now() > until) throw new Error(`${name} not ready in 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const listeners = (started['listeners'] as string[]).map((l) => {
    const [lname, rest] = l.split('=') as [string, string];
    return { name: lname, addr: parseAddr(rest.replace(/\(.*\)$/, '')) };
  });
  return {
    proc,
    pid: proc.pid!,
    logs: () => lines,
    access: (msg) => lines.filter((l) => l['scope'] === 'access' && l['msg'] === msg),
    listener(lname, ip) {
      const l = listeners.find((x) => x.name === lname && (ip === undefined || x.addr.ip === ip));
      if (!l) throw new Error(`${name}: no ${lname} listener${ip ? ` on ${ip}` : ''}`);
      return l.addr;
    },
    // Process gauges may read NaN (e.g. before the first GC sample); the tests never ask for them.
    metrics: async () => parsePrometheusText((await httpBody(stats, '/metrics')).split('\n').filter((l) => !/\sNaN$/i.test(l)).join('\n')),
  };
}

function parseAddr(s: string): SocketAddr {
  const i = s.lastIndexOf(':');
  return makeSocketAddr(s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1)));
}

function httpStatus(a: SocketAddr, p: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get({ host: a.ip, port: a.port, path: p }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
}

function httpBody(a: SocketAddr, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: a.ip, port: a.port, path: p }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}
