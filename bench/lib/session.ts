import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { ProcessSet } from './proc';
import { RpcClient } from './ipc';
import { mintDevPki } from './certs';
import type { HostPort } from './net-util';
import type { BenchOptions, PathContext } from '../paths/types';

/** What every run (suite or soak) starts first: a temp directory, the bench server and load generator, the path context. */
export interface BenchSession {
  readonly procs: ProcessSet;
  readonly dir: string;
  readonly server: RpcClient;
  readonly loadgen: RpcClient;
  readonly ctx: PathContext;
  /** Stops every child by PID, removes the temp directory (unless kept) and the signal handlers. */
  close(graceMs: number): Promise<void>;
}

/**
 * Starts the two helper children in a fresh temp directory. SIGINT/SIGTERM stop everything
 * the run started (by PID) and exit; process exit kills what is left.
 */
export function openBenchSession(o: { readonly prefix: string; readonly bench: BenchOptions; readonly keepTemp: boolean; readonly progress: (line: string) => void }): BenchSession {
  const procs = new ProcessSet();
  const dir = mkdtempSync(path.join(os.tmpdir(), o.prefix));
  const onSignal = (sig: NodeJS.Signals): void => {
    o.progress(`\n${sig}: stopping everything the run started…`);
    procs.stopAll(2000).finally(() => {
      if (!o.keepTemp) rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  const onExit = (): void => procs.killAllNow();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  const here = path.join(o.bench.repoRoot, 'dist', 'bench');
  const server = new RpcClient(procs.fork('bench-server', path.join(here, 'server.js'), [], { logPath: path.join(dir, 'bench-server.log') }), 'bench server');
  const loadgen = new RpcClient(procs.fork('bench-loadgen', path.join(here, 'loadgen.js'), [], { logPath: path.join(dir, 'bench-loadgen.log') }), 'load generator');
  const ctx: PathContext = {
    procs,
    dir,
    pki: mintDevPki(dir, ['hop-a', 'hop-b']),
    opts: o.bench,
    shared: new Map(),
    server: { listen: async (host: string): Promise<HostPort> => ({ host, port: (await server.call<{ port: number }>('listen', { host }, 5000)).port }) },
  };
  return {
    procs,
    dir,
    server,
    loadgen,
    ctx,
    async close(graceMs) {
      await procs.stopAll(graceMs);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', onExit);
      if (!o.keepTemp) rmSync(dir, { recursive: true, force: true });
      else o.progress(`temp files kept in ${dir}`);
    },
  };
}
