import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Per data-path thread figures (the node with ZTUNNEL_WORKER_THREADS > 1). Node's process
 * metrics (`nodejs_heap_*`, event-loop lag) describe the main thread only, since each
 * worker thread has its own V8 heap and event loop; these say what each thread holds and
 * how many connections it took, read at scrape time. `thread` is 0 for the main thread.
 */
export function registerThreadMetrics(registry: Registry, thread: number, accepted: () => number): void {
  const label = String(thread);
  new Gauge({
    name: 'ztunnel_ts_thread_heap_used_bytes',
    help: 'V8 heap in use, per data-path thread (0 = the main thread)',
    labelNames: ['thread'],
    registers: [registry],
    collect() {
      this.labels(label).set(getHeapStatistics().used_heap_size);
    },
  });
  new Counter({
    name: 'ztunnel_ts_thread_connections_accepted_total',
    help: 'Accepted connections served by each data-path thread (0 = the main thread)',
    labelNames: ['thread'],
    registers: [registry],
    collect() {
      this.reset();
      this.labels(label).inc(accepted());
    },
  });
}
