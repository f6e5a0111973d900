/**
 * Readiness as a set of named tasks (ztunnel's Ready.register_task): ready only when
 * none is pending. Shutdown adds a task that never completes, so readiness goes false first.
 */
export class Readiness {
  private readonly pending = new Set<string>();
  private seq = 0;
  private readonly names = new Map<number, string>();

  /** Registers a pending task; call the returned function once it is done. Idempotent. */
  register(name: string): () => void {
    const id = ++this.seq;
    this.names.set(id, name);
    this.pending.add(name);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.names.delete(id);
      if (![...this.names.values()].includes(name)) this.pending.delete(name);
    };
  }

  private readonly details = new Map<string, () => string | null>();

  /** Says why a task is still pending (e.g. the CA's error), for /healthz/ready. */
  describe(name: string, detail: () => string | null): void {
    this.details.set(name, detail);
  }

  /** Pending tasks, each with its detail when it has one: `certificates (CA_UNREACHABLE: …)`. */
  pendingDescriptions(): string[] {
    return this.pendingTasks().map((name) => {
      const d = this.details.get(name)?.();
      return d ? `${name} (${d})` : name;
    });
  }

  isReady(): boolean {
    return this.pending.size === 0;
  }

  pendingTasks(): string[] {
    return [...this.pending].sort();
  }

  markShuttingDown(): void {
    this.register('shutdown');
  }
}
