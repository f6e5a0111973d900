import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ProxyError } from '../errors';
import type { StateMetrics } from '../metrics/state-metrics';
import { formatLocalConfigError, parseLocalConfig, type LocalConfigError } from './local-config';
import type { StateUpdater } from './proxy-state';
import type { SourceWriter, StateSource } from './source';
import { WatchedPath } from '../util/watched-path';

export interface LocalConfigSourceOptions {
  /** LOCAL_XDS_PATH: a file, watched and reloaded. Exactly one of path / inline. */
  readonly path: string | null;
  /** LOCAL_XDS: inline YAML, loaded once. */
  readonly inline: string | null;
  readonly updater: StateUpdater;
  readonly logger: Logger;
  readonly metrics: StateMetrics;
  /** Called once, after the first successful load (e.g. a readiness task's release). */
  readonly onFirstLoad?: () => void;
  /** Quiet period after the last file event before reloading (editors write in bursts). */
  readonly debounceMs?: number;
  /**
   * A file modified less than this long ago is read only once its size and mtime stay the
   * same across this interval, so a rewrite in progress (`> file`, then the new content) is
   * not read half-way.
   */
  readonly stableMs?: number;
}

/** How long a file that keeps changing is waited for before it is read anyway (and most likely rejected). */
const MAX_STABLE_ROUNDS = 20;

interface LastError {
  readonly at: string;
  readonly errors: readonly string[];
}

/**
 * The local-file state source (ztunnel's LOCAL_XDS_PATH / LOCAL_XDS): each good load
 * replaces what this file held before (and nothing another source holds). The file is watched through its directory, because editors and
 * ConfigMap updates replace the file (rename) rather than write it in place; events are
 * debounced and a content hash skips no-op reloads. A bad file is rejected as a whole:
 * every error is logged with its line, and the last good state stays in force.
 */
export class LocalConfigSource implements StateSource {
  readonly name = 'local_config';
  /** Resolves after the first successful load. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private watch: WatchedPath | null = null;
  private lastHash: string | null = null;
  private lastGoodText: string | null = null;
  private lastError: LastError | null = null;
  private loads = 0;
  /** The last read found no file (not delivered yet), as opposed to a bad one. */
  private missing = false;
  private closed = false;
  /** Owns only what this file lists: other sources' resources survive every reload. */
  private readonly writer: SourceWriter;

  constructor(private readonly opts: LocalConfigSourceOptions) {
    if (opts.path !== null && opts.inline !== null) throw new ProxyError('CONFIG_INVALID', 'set only one of LOCAL_XDS_PATH and LOCAL_XDS');
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.writer = opts.updater.source(opts.path === null ? 'LOCAL_XDS' : `file:${resolve(opts.path)}`);
  }

  private get sourceName(): string {
    return this.opts.path ?? 'LOCAL_XDS';
  }

  /**
   * Loads once. With no last good state to fall back on, a config that does not parse (or
   * cannot be read) fails start-up with every error listed (the process exits, as ztunnel
   * does); later bad versions of the file are rejected and the last good state stays.
   */
  async start(): Promise<void> {
    if (this.opts.inline !== null) {
      if (!this.applyText(this.opts.inline)) throw this.startError();
      return;
    }
    if (this.opts.path === null) return;
    this.watch = new WatchedPath({ path: this.opts.path, logger: this.opts.logger, what: 'local config', debounceMs: this.opts.debounceMs, reload: () => this.reloadFile() });
    await this.watch.start();
    await this.watch.run();
    // A file that does not exist yet has not been delivered (a volume still being mounted):
    // the source watches for it and readiness stays pending. One that exists but is bad is an
    // operator error that waiting will not fix.
    if (this.loads === 0 && !this.closed && !this.missing) {
      this.stop();
      throw this.startError();
    }
  }

  private startError(): ProxyError {
    const hint = this.opts.inline === null ? ' (no earlier good state to keep; fix it and start again)' : '';
    return new ProxyError('CONFIG_INVALID', `${this.sourceName} is invalid${hint}:\n  ${this.lastError?.errors.join('\n  ')}`);
  }

  async close(): Promise<void> {
    this.stop();
    await this.watch?.close();
  }

  destroy(): void {
    this.stop();
  }

  dump(): unknown {
    return {
      source: this.opts.path === null && this.opts.inline === null ? null : this.sourceName,
      staticConfig: this.lastGoodText,
      loads: this.loads,
      lastError: this.lastError,
      version: this.opts.updater.view.version,
    };
  }

  private stop(): void {
    this.closed = true;
    this.watch?.stop();
  }

  private async reloadFile(): Promise<void> {
    const path = this.opts.path as string;
    let text: string | null;
    try {
      text = await this.readStable(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.missing = code === 'ENOENT';
      this.reject(hashOf(`\0missing:${code}`), [`${path}: cannot read (${code})`]);
      return;
    }
    this.missing = false;
    if (text === null || this.closed) return;
    this.applyText(text);
  }

  /** Reads the file once it has stopped changing (size and mtime steady over `stableMs`); null when closed meanwhile. */
  private async readStable(path: string): Promise<string | null> {
    const interval = this.opts.stableMs ?? 250;
    let prev = await stat(path);
    for (let round = 0; round < MAX_STABLE_ROUNDS && Date.now() - prev.mtimeMs < interval; round++) {
      await new Promise((r) => setTimeout(r, interval));
      if (this.closed) return null;
      const cur = await stat(path);
      if (cur.size === prev.size && cur.mtimeMs === prev.mtimeMs) break;
      prev = cur;
    }
    return readFile(path, 'utf8');
  }

  /** Parses and applies; returns whether the text is (now) the state in force. */
  private applyText(text: string): boolean {
    const hash = hashOf(text);
    if (hash === this.lastHash) return this.lastError === null;
    const parsed = parseLocalConfig(text, this.sourceName);
    if (!parsed.ok) {
      this.reject(hash, parsed.errors.map((e: LocalConfigError) => formatLocalConfigError(this.sourceName, e)));
      return false;
    }
    this.lastHash = hash;
    const change = this.writer.replaceAll(parsed.value);
    this.lastGoodText = text;
    this.lastError = null;
    this.loads++;
    this.opts.metrics.localConfigReloads.labels('applied').inc();
    this.opts.logger.info(
      {
        source: this.sourceName,
        workloads: parsed.value.workloads.length,
        services: parsed.value.services.length,
        policies: parsed.value.policies.length,
        version: this.opts.updater.view.version,
        changed: change !== null,
      },
      'local config applied',
    );
    this.opts.onFirstLoad?.();
    this.resolveReady();
    return true;
  }

  private reject(hash: string, errors: string[]): void {
    if (hash === this.lastHash) return; // same bad content (or same missing file): reported already
    this.lastHash = hash;
    this.lastError = { at: new Date().toISOString(), errors };
    this.opts.metrics.localConfigReloads.labels('rejected').inc();
    const kept = this.loads > 0 ? 'keeping the last good state' : 'no good state loaded yet';
    this.opts.logger.warn(
      { source: this.sourceName, reason: 'CONFIG_INVALID', errors, keptVersion: this.opts.updater.view.version },
      `local config rejected (${errors.length} error${errors.length === 1 ? '' : 's'}); ${kept}`,
    );
  }
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
