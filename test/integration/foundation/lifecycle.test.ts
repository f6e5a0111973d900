import test from 'ava';
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { Runtime } from '../../../src/app/runtime';
import type { Component } from '../../../src/app/component';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createRegistry } from '../../../src/metrics/registry';
import { closeServer } from '../../../src/admin/listen';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { httpRequest } from '../../helpers/http';

const CLI = path.resolve(__dirname, '../../../src/cli/main.js');

/** A real TCP component: close() stops accepting and waits for open sockets; destroy() kills them. */
class HoldingServer implements Component {
  readonly name = 'holder';
  readonly server: Server = createServer({ allowHalfOpen: true }, (s) => {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('end', () => s.end());
  });
  readonly sockets = new Set<Socket>();
  destroyed = 0;
  port = 0;
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  async close(): Promise<void> {
    const stopped = closeServer(this.server);
    while (this.sockets.size > 0) await new Promise((r) => setTimeout(r, 10));
    await stopped;
  }
  destroy(): void {
    this.destroyed++;
    for (const s of this.sockets) s.destroy();
  }
  listeners() {
    return [{ name: 'holder', address: makeSocketAddr('127.0.0.1', this.port) }];
  }
}

function runtime(deadlineMs: number, logs: LogCollector): Runtime {
  return new Runtime({
    logger: createLogger({ level: 'info', format: 'json', destination: logs }),
    registry: createRegistry({ component: 'test', processMetrics: false }),
    adminAddr: { host: '127.0.0.1', port: 0 },
    statsAddr: null,
    readinessAddr: { host: '127.0.0.1', port: 0 },
    terminationDeadlineMs: deadlineMs,
  });
}

test('graceful close waits for in-flight work up to the deadline, then force-closes', async (t) => {
  const logs = new LogCollector();
  const rt = runtime(400, logs);
  const holder = rt.add(new HoldingServer());
  const addrs = await rt.start();
  t.deepEqual(addrs.listeners.map((l) => l.name), ['holder']);
  const client = connect({ host: '127.0.0.1', port: holder.port });
  await new Promise((r) => client.on('connect', r));
  const closed = new Promise<void>((r) => client.on('close', () => r()));
  client.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  const closing = rt.close();
  // Readiness is false as soon as shutdown starts.
  await new Promise((r) => setTimeout(r, 50));
  t.false(rt.readiness.isReady());
  // New connections are refused while draining.
  await t.throwsAsync(
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: holder.port });
      s.on('connect', () => resolve(s));
      s.on('error', reject);
    }),
    { code: 'ECONNREFUSED' },
  );
  await closing;
  await closed;
  const elapsed = Date.now() - t0;
  t.true(elapsed >= 380, `forced only at the deadline (${elapsed}ms)`);
  t.true(elapsed < 3000, `and not much later (${elapsed}ms)`);
  t.is(holder.destroyed, 1);
  t.truthy(logs.find((l) => l['msg'] === 'drain deadline reached; force-closing remaining connections').length);
});

test('graceful close finishes early when in-flight work completes before the deadline', async (t) => {
  const logs = new LogCollector();
  const rt = runtime(5000, logs);
  const holder = rt.add(new HoldingServer());
  await rt.start();
  const client = connect({ host: '127.0.0.1', port: holder.port });
  await new Promise((r) => client.on('connect', r));
  client.on('error', () => undefined);
  const t0 = Date.now();
  const closing = rt.close();
  setTimeout(() => client.end(), 100);
  await closing;
  t.true(Date.now() - t0 < 2000);
  t.is(holder.destroyed, 0);
  t.truthy(logs.find((l) => l['msg'] === 'drained').length);
});

function startNode(extraEnv: Record<string, string>): { proc: ReturnType<typeof spawn>; lines: Promise<Record<string, unknown>>; out: () => string } {
  const proc = spawn(process.execPath, [CLI, 'node'], {
    env: { PATH: process.env['PATH'] ?? '', ADMIN_ADDR: '127.0.0.1:0', STATS_ADDR: '127.0.0.1:0', READINESS_ADDR: '127.0.0.1:0', OUTBOUND_ADDR: '', INBOUND_ADDR: '', INBOUND_PLAINTEXT_ADDR: '', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let buf = '';
  const lines = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const l of buf.split('\n')) {
        if (l.includes('"msg":"started"')) resolve(JSON.parse(l) as Record<string, unknown>);
      }
    });
    proc.on('exit', (code) => reject(new Error(`exited ${code} before start: ${buf}`)));
  });
  return { proc, lines, out: () => buf };
}

function exitCode(proc: ReturnType<typeof spawn>, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('process did not exit in time')), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test('SIGTERM drains and the process exits 0', async (t) => {
  const n = startNode({ CONNECTION_TERMINATION_DEADLINE: '1s' });
  t.teardown(() => n.proc.kill('SIGKILL'));
  const started = await n.lines;
  t.regex(String(started['admin']), /^127\.0\.0\.1:\d+$/);
  const t0 = Date.now();
  n.proc.kill('SIGTERM');
  t.is(await exitCode(n.proc, 10_000), 0);
  t.true(Date.now() - t0 < 5000);
  t.regex(n.out(), /"msg":"stopped"/);
});

test('POST /quitquitquit drains, answers "shutdown now" and the process exits 0', async (t) => {
  const n = startNode({});
  t.teardown(() => n.proc.kill('SIGKILL'));
  const started = await n.lines;
  const [ip, port] = String(started['admin']).split(':');
  const exited = exitCode(n.proc, 10_000);
  const r = await httpRequest(makeSocketAddr(ip!, Number(port)), '/quitquitquit', 'POST');
  t.is(r.status, 200);
  t.is(r.body, 'shutdown now\n');
  t.is(await exited, 0);
});

test('a port that cannot be bound fails start-up with exit 1 naming the address', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const n = startNode({ READINESS_ADDR: `127.0.0.1:${port}` });
  n.lines.catch(() => undefined);
  let err = '';
  n.proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  t.is(await exitCode(n.proc, 10_000), 1);
  t.regex(err, new RegExp(`cannot bind readiness listener on 127\\.0\\.0\\.1:${port}: address already in use`));
});

test('bad configuration exits 2 and lists every bad key', async (t) => {
  const n = startNode({ SECRET_TTL: 'x', POOL_MAX_STREAMS_PER_CONNECTION: '-1' });
  n.lines.catch(() => undefined);
  let err = '';
  n.proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  t.is(await exitCode(n.proc, 10_000), 2);
  t.regex(err, /SECRET_TTL="x"/);
  t.regex(err, /POOL_MAX_STREAMS_PER_CONNECTION="-1"/);
});
