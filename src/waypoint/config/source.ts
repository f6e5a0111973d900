import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Component } from '../../app/component';
import { formatLocalConfigError } from '../../state/config/yaml-reader';
import { parseL7Config } from './parse';
import { EMPTY_L7, type L7Config } from './types';
import { WatchedPath } from '../../util/watched-path';

export interface L7ConfigSourceOptions {
  /** A file, or a directory whose *.yaml / *.yml files are read in name order; null = no L7 config. */
  readonly path: string | null;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Called with every newly applied config (never with a rejected one). */
  readonly onApply: (config: L7Config) => void;
  readonly debounceMs?: number;
}

/**
 * The waypoint's route and policy source (WAYPOINT_CONFIG_PATH): the objects users apply,
 * read from one file or a directory and watched. A load that has any error is rejected
 * as a whole with every error's file:line:column, and the last good config stays in force.
 */
export class L7ConfigSource implements Component {
  readonly name = 'l7_config';
  private watch: WatchedPath | null = null;
  private lastHash: string | null = null;
  private lastError: { at: string; errors: string[] } | null = null;
  private current: L7Config = EMPTY_L7;
  private files: string[] = [];
  private loads = 0;
  private closed = false;
  private readonly reloads: Counter<'result'>;

  constructor(private readonly opts: L7ConfigSourceOptions) {
    this.reloads = new Counter({
      name: 'ztunnel_ts_waypoint_config_reloads_total',
      help: 'Waypoint route/policy config loads by result: applied, or rejected (the last good config stays)',
      labelNames: ['result'],
      registers: [opts.registry],
    });
    this.reloads.labels('applied').inc(0);
    this.reloads.labels('rejected').inc(0);
  }

  get config(): L7Config {
    return this.current;
  }

  /** Loads once and starts watching. A bad first load is logged; the waypoint serves with no routes or policies until fixed. */
  async start(): Promise<void> {
    if (this.opts.path === null) return;
    this.watch = new WatchedPath({ path: this.opts.path, logger: this.opts.logger, what: 'waypoint config', debounceMs: this.opts.debounceMs, reload: () => this.reload() });
    await this.watch.start();
    await this.watch.run();
  }

  async close(): Promise<void> {
    this.stop();
    await this.watch?.close();
  }

  destroy(): void {
    this.stop();
  }

  dump(): unknown {
    return { path: this.opts.path, files: this.files, loads: this.loads, lastError: this.lastError, ignoredKinds: this.current.ignoredKinds };
  }

  private stop(): void {
    this.closed = true;
    this.watch?.stop();
  }

  private async reload(): Promise<void> {
    const path = this.opts.path as string;
    let files: { text: string; source: string }[];
    try {
      files = await readConfigFiles(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.reject(`\0missing:${code}`, [`${path}: cannot read (${code}); keeping the last good config`]);
      return;
    }
    if (this.closed) return;
    const hash = createHash('sha256');
    for (const f of files) hash.update(f.source).update('\0').update(f.text).update('\0');
    const h = hash.digest('hex');
    if (h === this.lastHash) return;
    const parsed = parseL7Config(files);
    if (!parsed.ok) {
      this.reject(h, parsed.errors.map((e) => formatLocalConfigError(e.source, e)));
      return;
    }
    this.lastHash = h;
    this.current = parsed.value;
    this.files = files.map((f) => f.source);
    this.lastError = null;
    this.loads++;
    this.reloads.labels('applied').inc();
    for (const k of parsed.value.ignoredKinds) this.opts.logger.info({ kind: k, path }, 'waypoint config: kind not used by the waypoint, ignored');
    this.opts.logger.info({ path, routes: parsed.value.routes.length, policies: parsed.value.policies.length }, 'waypoint config applied');
    this.opts.onApply(parsed.value);
  }

  private reject(hash: string, errors: string[]): void {
    if (hash === this.lastHash) return;
    this.lastHash = hash;
    this.lastError = { at: new Date().toISOString(), errors };
    this.reloads.labels('rejected').inc();
    this.opts.logger.warn({ path: this.opts.path, reason: 'CONFIG_INVALID', errors }, `waypoint config rejected (${errors.length} error${errors.length === 1 ? '' : 's'}); keeping the last good config`);
  }
}

/** The file itself, or a directory's *.yaml / *.yml files in name order (hidden files skipped: ConfigMap mounts keep ..data links). */
async function readConfigFiles(path: string): Promise<{ text: string; source: string }[]> {
  const s = await stat(path);
  if (!s.isDirectory()) return [{ text: await readFile(path, 'utf8'), source: path }];
  const names = (await readdir(path)).filter((n) => !n.startsWith('.') && /\.ya?ml$/.test(n)).sort();
  return Promise.all(names.map(async (n) => ({ text: await readFile(join(path, n), 'utf8'), source: join(path, n) })));
}
