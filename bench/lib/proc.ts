import { spawn, fork, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

/** One process the harness started; it is the only thing the harness ever signals. */
interface Tracked {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  exited: boolean;
  readonly exitP: Promise<void>;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** stdout and stderr of the child go here (never to the harness terminal). */
  readonly logPath: string;
}

/**
 * Every process the harness starts, by PID. Stopping is always by the recorded PID
 * (SIGTERM, then SIGKILL after a grace period), never by name, so a benchmark run can
 * never touch processes that other people on the machine started.
 */
export class ProcessSet {
  private readonly procs = new Map<number, Tracked>();

  /** Starts a program; throws if it cannot be spawned at all. */
  spawn(name: string, cmd: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
    const fd = openSync(opts.logPath, 'a');
    try {
      const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: opts.env ?? process.env, cwd: opts.cwd });
      return this.track(name, child, opts.logPath);
    } finally {
      closeSync(fd);
    }
  }

  /** Starts a Node module with an IPC channel (the bench server and load generator). */
  fork(name: string, modulePath: string, args: readonly string[], opts: SpawnOptions & { execArgv?: string[] }): ChildProcess {
    const fd = openSync(opts.logPath, 'a');
    try {
      const child = fork(modulePath, [...args], { stdio: ['ignore', fd, fd, 'ipc'], env: opts.env ?? process.env, cwd: opts.cwd, execArgv: opts.execArgv ?? [] });
      return this.track(name, child, opts.logPath);
    } finally {
      closeSync(fd);
    }
  }

  private track(name: string, child: ChildProcess, logPath: string): ChildProcess {
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    const pid = child.pid;
    let done!: () => void;
    const exitP = new Promise<void>((r) => (done = r));
    const t: Tracked = { name, child, logPath, exited: false, exitP };
    child.once('exit', () => {
      t.exited = true;
      done();
    });
    child.once('error', () => {
      t.exited = true;
      done();
    });
    this.procs.set(pid, t);
    return child;
  }

  /** True while the process is running. */
  alive(pid: number): boolean {
    const t = this.procs.get(pid);
    return t !== undefined && !t.exited;
  }

  /** Last lines of a process's log, for error messages. */
  logTail(pid: number, lines = 15): string {
    const t = this.procs.get(pid);
    if (!t) return '';
    try {
      return readFileSync(t.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGTERM (lets node --cpu-prof write its profile), then SIGKILL after graceMs. */
  async stop(pid: number, graceMs = 3000): Promise<void> {
    const t = this.procs.get(pid);
    if (!t) return;
    if (!t.exited) {
      t.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([t.exitP, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      if (timer) clearTimeout(timer);
      if (!t.exited) {
        t.child.kill('SIGKILL');
        await Promise.race([t.exitP, new Promise<void>((r) => setTimeout(r, 1000))]);
      }
    }
    this.procs.delete(pid);
  }

  /** Stops everything still running, newest first (load before proxies before the CA). */
  async stopAll(graceMs = 3000): Promise<void> {
    const pids = [...this.procs.keys()].reverse();
    await Promise.all(pids.map((pid) => this.stop(pid, graceMs)));
  }

  /** Synchronous last resort for process 'exit': SIGKILL every tracked PID. */
  killAllNow(): void {
    for (const t of this.procs.values()) if (!t.exited) t.child.kill('SIGKILL');
  }
}

/** CPU time and resident memory of one process, from /proc (Linux only). */
export interface ProcSample {
  /** user + system CPU seconds (all threads). */
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

/** Clock ticks per second for /proc/<pid>/stat; 100 on every Linux the harness targets. */
const CLK_TCK = 100;

export function sampleProc(pid: number): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return { cpuSeconds: (utime + stime) / CLK_TCK, rssBytes: m ? Number(m[1]) * 1024 : 0 };
  } catch {
    return null;
  }
}

/** Sum over several processes; processes that vanished count as zero. */
export function sampleProcs(pids: readonly number[]): ProcSample {
  let cpu = 0;
  let rss = 0;
  for (const pid of pids) {
    const s = sampleProc(pid);
    if (s) {
      cpu += s.cpuSeconds;
      rss += s.rssBytes;
    }
  }
  return { cpuSeconds: cpu, rssBytes: rss };
}
