import type { ChildProcess } from 'node:child_process';

/** One request from the harness to a child (bench server or load generator). */
export interface RpcRequest {
  readonly id: number;
  readonly op: string;
  readonly args: unknown;
}

export interface RpcReply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

/**
 * Harness side of a child's IPC channel: concurrent calls matched by id, each bounded by
 * a timeout, all failed at once if the child exits.
 */
export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly child: ChildProcess, private readonly name: string) {
    child.on('message', (m: RpcReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error ?? 'failed'}`));
    });
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`${name} exited (code ${code}, signal ${signal})`));
      }
      this.pending.clear();
    });
  }

  call<T>(op: string, args: unknown, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${op} timed out after ${timeoutMs}ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const req: RpcRequest = { id, op, args };
      this.child.send(req, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      });
    });
  }
}

/**
 * Child side: dispatches requests to handlers and exits when the harness goes away
 * (IPC disconnect), so a crashed harness never leaves load running.
 */
export function serveRpc(handlers: Record<string, (args: never) => Promise<unknown> | unknown>): void {
  process.on('message', (m: RpcRequest) => {
    const h = handlers[m.op];
    const reply = (r: RpcReply): void => {
      if (process.connected) process.send?.(r);
    };
    if (!h) {
      reply({ id: m.id, ok: false, error: `unknown op ${m.op}` });
      return;
    }
    Promise.resolve()
      .then(() => h(m.args as never))
      .then(
        (result) => reply({ id: m.id, ok: true, result }),
        (err: unknown) => reply({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}
