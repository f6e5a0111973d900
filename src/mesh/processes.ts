import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { request } from 'node:http';

/** A child process the mesh started, with its log file. */
export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly logPath: string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<string>;
}

/**
 * Starts `node <main.js> <args>` with exactly the environment given (plus PATH), its
 * stdout/stderr appended to `logPath`. The mesh keeps each child's PID and stops only
 * those (never by name).
 */
export function startChild(name: string, mainJs: string, args: readonly string[], env: Record<string, string>, logPath: string): Child {
  const log: WriteStream = createWriteStream(logPath, { flags: 'a' });
  const proc = spawn(process.execPath, [mainJs, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  const exited = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => {
      resolve(signal ?? String(code));
    });
    proc.once('error', (err) => resolve(`spawn error: ${err.message}`));
  });
  void exited.then(() => setTimeout(() => log.end(), 100));
  return { name, proc, logPath, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(c: Child, graceMs = 5000): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
  await c.exited;
  clearTimeout(t);
}

/** The last lines of a child's log, for error messages. */
export function logTail(c: Child, lines = 15): string {
  try {
    return readFileSync(c.logPath, 'utf8').split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}

/** GET a URL on loopback; resolves status + body, or null on any error (bounded). */
export function httpGet(ip: string, port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = request({ host: ip, port, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/** Polls /healthz/ready until 200 or the deadline. */
export async function waitReady(ip: string, port: number, deadlineMs: number, alive: () => boolean): Promise<{ ready: boolean; last: string }> {
  const until = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < until && alive()) {
    const r = await httpGet(ip, port, '/healthz/ready', 1000);
    if (r) {
      last = `${r.status} ${r.body.trim()}`;
      if (r.status === 200) return { ready: true, last };
    }
    await sleep(200);
  }
  return { ready: false, last };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
