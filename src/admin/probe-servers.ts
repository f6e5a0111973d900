import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { ListenAddr, SocketAddr } from '../util/socket-addr';
import type { Readiness } from './readiness';
import { listen, closeServer } from './listen';
import { sendText } from './http-util';

/** :15020 — /metrics and /stats/prometheus from the root's own registry (merged with the node's worker threads' when it has them). */
export class MetricsServer {
  private readonly server: Server;
  private collect: () => Promise<string>;
  constructor(registry: Registry) {
    this.collect = () => registry.metrics();
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://stats').pathname;
      if (path !== '/metrics' && path !== '/stats/prometheus') return sendText(res, 404, 'not found; use /metrics\n');
      this.collect().then(
        (body) => sendText(res, 200, body, registry.contentType),
        (err: unknown) => sendText(res, 500, `metrics collection failed: ${String(err)}\n`),
      );
    });
  }
  /** Replaces what a scrape returns (the node with worker threads: every thread's families, merged). */
  setSource(collect: () => Promise<string>): void {
    this.collect = collect;
  }

  start(addr: ListenAddr): Promise<SocketAddr> {
    return listen(this.server, addr, 'stats');
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return closeServer(this.server);
  }
}

/** :15021 — /healthz/ready: 200 `ready` when no task is pending, else 500 naming them. */
export class ReadinessServer {
  private readonly server: Server;
  constructor(readiness: Readiness) {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://ready').pathname;
      if (path !== '/healthz/ready') return sendText(res, 404, 'not found; use /healthz/ready\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed\n');
      if (readiness.isReady()) return sendText(res, 200, 'ready\n');
      return sendText(res, 500, `not ready, pending: ${readiness.pendingDescriptions().join(', ')}\n`);
    });
  }
  start(addr: ListenAddr): Promise<SocketAddr> {
    return listen(this.server, addr, 'readiness');
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return closeServer(this.server);
  }
}
