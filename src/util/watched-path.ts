import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';

export interface WatchedPathOptions {
  /** A file, or a directory (its files). */
  readonly path: string;
  readonly logger: Logger;
  /** What the log lines call it ("local config", "waypoint config"). */
  readonly what: string;
  /** Quiet period after the last event before reloading (editors write in bursts). */
  readonly debounceMs?: number;
  /** Reads and applies the path again. Never runs twice at once. */
  readonly reload: () => Promise<void>;
}

/**
 * The watch-and-reload lifecycle of a config path, shared by the file sources (the local
 * state file, the waypoint's routes and policies): a directory is watched itself, a file
 * through its directory, because editors and ConfigMap updates replace files by rename;
 * events are debounced, and reloads run one after another, so a close waits only for the
 * one in flight. What a reload reads and how it judges the content stays with its source.
 */
export class WatchedPath {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: WatchedPathOptions) {}

  get closed(): boolean {
    return this.stopped;
  }

  /** Starts watching (no reload: the source runs its first load itself, with run()). */
  async start(): Promise<void> {
    const abs = resolve(this.o.path);
    const isDir = await stat(abs).then((s) => s.isDirectory(), () => false);
    if (this.stopped) return;
    const only = isDir ? null : basename(abs);
    try {
      this.watcher = watch(isDir ? abs : dirname(abs), { persistent: false }, (_event, changed) => {
        if (only !== null && changed !== null && changed.toString() !== only) return;
        this.schedule();
      });
      this.watcher.on('error', (err) => this.o.logger.warn({ err, path: this.o.path }, `${this.o.what} watch failed; reloads stop`));
    } catch (err) {
      this.o.logger.warn({ err, path: this.o.path }, `cannot watch the ${this.o.what}; changes will not be reloaded`);
    }
  }

  /** Reloads now, after any reload in flight. */
  run(): Promise<void> {
    this.chain = this.chain
      .then(() => (this.stopped ? undefined : this.o.reload()))
      .catch((err: unknown) => this.o.logger.error({ err, path: this.o.path }, `${this.o.what} reload failed unexpectedly; keeping the last good version`));
    return this.chain;
  }

  /** Stops watching; resolves when the reload in flight (if any) is over. */
  close(): Promise<void> {
    this.stop();
    return this.chain;
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.o.debounceMs ?? 100);
  }
}
