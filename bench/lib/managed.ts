import type { ProcessSet } from './proc';

export interface ManagedSpec {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly logPath: string;
  /** Resolves when the process serves; `alive` lets it stop waiting for a dead process. */
  readonly ready: (alive: () => boolean) => Promise<void>;
}

/**
 * A proxy process the harness can (re)start with the same command, addresses and
 * config. Restarting gives the memory scenario a fresh process each trial: allocators
 * keep freed memory, so a second hold of N connections in the same process would mostly
 * reuse it and report near zero.
 */
export class ManagedProc {
  private current = 0;

  constructor(private readonly procs: ProcessSet, readonly spec: ManagedSpec) {}

  get pid(): number {
    return this.current;
  }

  async start(): Promise<void> {
    const s = this.spec;
    const child = this.procs.spawn(s.name, s.cmd, s.args, { logPath: s.logPath, ...(s.env ? { env: s.env } : {}) });
    const pid = child.pid!;
    this.current = pid;
    try {
      await s.ready(() => this.procs.alive(pid));
    } catch (err) {
      const tail = this.procs.logTail(pid);
      await this.procs.stop(pid);
      throw new Error(`${s.name} did not start: ${err instanceof Error ? err.message : String(err)}\n${tail}`);
    }
  }

  async stop(graceMs?: number): Promise<void> {
    if (this.current) await this.procs.stop(this.current, graceMs);
  }

  async restart(graceMs?: number): Promise<void> {
    await this.stop(graceMs);
    await this.start();
  }
}
