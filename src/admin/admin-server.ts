import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { ListenAddr, SocketAddr } from '../util/socket-addr';
import { logLevelsOf } from '../logging/logger';
import { parseLevelSpec, type LogLevels } from '../logging/levels';
import { isLoopback } from '../util/ip';
import { Profiler } from './profiling';
import { listen, closeServer } from './listen';
import { sendJson, sendText, type Handler } from './http-util';

export interface AdminDeps {
  logger: Logger;
  /** Runs the graceful shutdown; resolves when drained (or at the deadline). */
  onQuit: () => Promise<void>;
}

/**
 * The admin server (ztunnel's :15000). Bound to loopback only (config rejects anything
 * else). Components contribute /config_dump sections and extra GET endpoints through
 * addDumpSection / addHandler; the server owns none of their state.
 */
export class AdminServer {
  private readonly server: Server;
  private readonly sections = new Map<string, () => unknown>();
  private readonly fields: Array<() => Record<string, unknown>> = [];
  private readonly handlers = new Map<string, { doc: string; handler: Handler }>();
  private bound: SocketAddr | null = null;
  private readonly levels: LogLevels;
  private readonly profiler = new Profiler();

  constructor(private readonly deps: AdminDeps) {
    this.levels = logLevelsOf(deps.logger);
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://admin');
      // DNS rebinding: a page in a browser on the node can make it POST to a name that
      // resolves to 127.0.0.1, but the browser then sends that name as Host. Changing
      // requests are served only when Host names the loopback itself.
      if (req.method !== 'GET' && req.method !== 'HEAD' && !isLocalHostHeader(req.headers.host)) {
        deps.logger.warn({ path: url.pathname, host: req.headers.host ?? null }, 'admin request refused: Host is not a loopback address or localhost');
        return sendText(res, 403, `forbidden: Host ${JSON.stringify(req.headers.host ?? '')} is not a loopback address or localhost\n`);
      }
      Promise.resolve(this.route(req.method ?? 'GET', url, req, res)).catch((err: unknown) => {
        deps.logger.error({ err, path: url.pathname }, 'admin handler failed');
        if (!res.headersSent) sendText(res, 500, 'internal error\n');
      });
    });
  }

  addDumpSection(name: string, fn: () => unknown): void {
    this.sections.set(name, fn);
  }

  /** Several top-level /config_dump keys from one source (ztunnel's flattened proxy state). */
  addDumpFields(fn: () => Record<string, unknown>): void {
    this.fields.push(fn);
  }

  addHandler(path: string, doc: string, handler: Handler): void {
    this.handlers.set(path, { doc, handler });
  }

  async start(addr: ListenAddr): Promise<SocketAddr> {
    this.bound = await listen(this.server, addr, 'admin');
    return this.bound;
  }

  address(): SocketAddr | null {
    return this.bound;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return closeServer(this.server);
  }

  /** A section may answer later (the node's worker threads report their share by message). */
  async configDump(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const fn of this.fields) Object.assign(out, fn());
    const names = [...this.sections.keys()];
    const values = await Promise.all([...this.sections.values()].map((fn) => fn()));
    names.forEach((name, i) => (out[name] = values[i]));
    return out;
  }

  private async route(method: string, url: URL, req: Parameters<Handler>[0], res: Parameters<Handler>[1]): Promise<void> {
    switch (url.pathname) {
      case '/':
        return sendText(res, 200, this.index(), 'text/html; charset=utf-8');
      case '/config_dump':
        return sendJson(res, 200, await this.configDump());
      case '/logging':
        return this.logging(method, url, res);
      case '/debug/pprof/profile':
        return this.profiler.cpu(req, res, url);
      case '/debug/pprof/heap':
        return this.profiler.heap(req, res, () => process.memoryUsage().heapUsed);
      case '/quitquitquit':
        if (method !== 'POST') return sendText(res, 405, 'method not allowed; use POST\n');
        await this.deps.onQuit();
        return sendText(res, 200, 'shutdown now\n');
    }
    const h = this.handlers.get(url.pathname);
    if (h) return h.handler(req, res, url);
    return sendText(res, 404, 'not found; see / for the endpoints\n');
  }

  /** ztunnel's /logging: `?level=debug`, `?level=info,access=debug,hbone=warn`, `?reset`. */
  private logging(method: string, url: URL, res: Parameters<Handler>[1]): void {
    const level = url.searchParams.get('level');
    if (level !== null || url.searchParams.has('reset')) {
      if (method !== 'POST') return sendText(res, 405, 'changing the level needs POST\n');
      if (url.searchParams.has('reset')) this.levels.reset();
      else {
        const parsed = parseLevelSpec(level ?? '');
        const applied = parsed.ok ? this.levels.apply(parsed.spec) : parsed;
        if (!applied.ok) return sendText(res, 400, `invalid level ${JSON.stringify(level)}: ${applied.error}\n`);
      }
      this.deps.logger.info({ level: this.levels.describe() }, 'log level changed');
    }
    return sendText(res, 200, `current log level is ${this.levels.describe()}\n`);
  }

  private index(): string {
    const rows = [
      ['/config_dump', 'configuration, workload state, certificates (never keys), listeners, pools'],
      ['/logging', 'show the log level; POST ?level=debug or ?level=info,access=debug,hbone=warn to change it, ?reset for the start-up level'],
      ['/quitquitquit', 'POST: drain and exit'],
      ['/debug/pprof/profile', 'CPU profile (.cpuprofile, open in Chrome DevTools): ?seconds=1..300 (10) &frequency=1..1000 Hz (100)'],
      ['/debug/pprof/heap', 'V8 heap snapshot (.heapsnapshot); pauses the process while it is taken; refused above a 1 GiB heap'],
      ...[...this.handlers].map(([p, h]) => [p, h.doc]),
    ];
    return `<!doctype html><html><head><title>ztunnel-ts admin</title></head><body><h1>ztunnel-ts admin</h1><table>${rows
      .map(([p, d]) => `<tr><td><a href="${p}">${p}</a></td><td>${d}</td></tr>`)
      .join('')}</table></body></html>\n`;
  }
}

/** Host header (`127.0.0.1:15000`, `[::1]:15000`, `localhost`) names this machine's loopback. */
export function isLocalHostHeader(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.trim().toLowerCase();
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']') < 0 ? h.length : h.indexOf(']')) : h.replace(/:\d*$/, '');
  return name === 'localhost' || isLoopback(name);
}
