import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Independent PROXY protocol v2 readers for the tests: a small Python reader written from
 * the protocol's specification (test/fixtures/proxy-v2/pp2.py; it also reads TLVs, which
 * the Debian HAProxy 2.6 cannot show), and HAProxy itself (`accept-proxy`).
 */
export const PP2_SCRIPT = resolve(__dirname, '../../../test/fixtures/proxy-v2/pp2.py');
const PYTHON = '/usr/bin/python3';

/** What the Python reader says about one header. */
export interface Pp2Info {
  readonly version?: number;
  readonly command?: string;
  readonly family?: string;
  readonly transport?: string;
  readonly src?: string;
  readonly dst?: string;
  readonly tlvs?: Record<string, string>;
  readonly rest?: string;
  readonly error?: string;
}

export function pythonSkipReason(): string | null {
  return existsSync(PYTHON) ? null : `${PYTHON} is not installed`;
}

export function haproxySkipReason(): string | null {
  return spawnSync('haproxy', ['-v']).status === 0 ? null : 'haproxy is not installed (Debian package haproxy)';
}

/** Decodes `bytes` (a header and what follows) with the Python reader. */
export function decodeWithPython(bytes: Buffer): Pp2Info {
  const r = spawnSync(PYTHON, [PP2_SCRIPT, 'decode'], { input: bytes, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pp2.py decode failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Pp2Info;
}

export interface TestServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The Python reader as a server on host:port: it answers each connection with one JSON line about its header, then echoes. */
export async function startPythonReader(host: string, port: number): Promise<TestServer> {
  const child = killedWithUs(spawn(PYTHON, [PP2_SCRIPT, 'serve', host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (out += d));
  const bound = await new Promise<number>((res, rej) => {
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child.once('exit', (code) => rej(new Error(`pp2.py serve exited with ${code}: ${out}`)));
  });
  return { port: bound, close: () => stop(child) };
}

/**
 * HAProxy on host:port with `accept-proxy`, answering every HTTP request with what it took
 * from the PROXY header: `src=<ip>:<port> dst=<ip>:<port> proxied=<0|1>`.
 */
export async function startHaproxyReader(host: string, port: number): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-pp2-'));
  const cfg = join(dir, 'haproxy.cfg');
  const bind = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  writeFileSync(cfg, haproxyConfig(bind));
  const child = killedWithUs(spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const until = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${log}`);
    if (await accepts(host, port)) break;
    if (Date.now() > until) throw new Error(`haproxy did not listen on ${bind}: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    close: async () => {
      await stop(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** HAProxy's config for a reader bound at `bind` (see startHaproxyReader). */
export function haproxyConfig(bind: string): string {
  return [
    'global',
    '  maxconn 100',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 10s',
    '  timeout server 10s',
    'frontend pp',
    `  bind ${bind} accept-proxy`,
    '  http-request return status 200 content-type text/plain lf-string "src=%[src]:%[src_port] dst=%[dst]:%[dst_port] proxied=%[fc_rcvd_proxy]\\n"',
    '',
  ].join('\n');
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** A test worker that dies (a timeout) skips its after-hooks: its servers must not outlive it. */
function killedWithUs(child: ChildProcess): ChildProcess {
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}
