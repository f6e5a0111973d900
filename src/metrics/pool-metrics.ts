import { Counter, Gauge, type Registry } from 'prom-client';

export interface PoolStatsSource {
  stats(): { sessions: number; activeStreams: number; dials: number; dialFailures: number };
}

/**
 * HBONE client pool figures, read from the pool at scrape time (nothing is counted on the
 * data path). Dials vs. sessions shows whether pooling works; dial failures rising with
 * NETWORK_POLICY in the logs points at a blocked 15008.
 */
export function registerPoolMetrics(registry: Registry, pool: PoolStatsSource): void {
  new Gauge({
    name: 'ztunnel_ts_hbone_pool_sessions',
    help: 'HBONE client connections currently pooled',
    registers: [registry],
    collect() {
      this.set(pool.stats().sessions);
    },
  });
  new Gauge({
    name: 'ztunnel_ts_hbone_pool_active_streams',
    help: 'CONNECT streams open on pooled HBONE connections',
    registers: [registry],
    collect() {
      this.set(pool.stats().activeStreams);
    },
  });
  // Counters that mirror monotonic pool totals: reset() + inc(total) at scrape keeps them exact.
  new Counter({
    name: 'ztunnel_ts_hbone_pool_dials_total',
    help: 'HBONE connections the pool dialled (TCP + TLS + HTTP/2 handshakes)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(pool.stats().dials);
    },
  });
  new Counter({
    name: 'ztunnel_ts_hbone_pool_dial_failures_total',
    help: 'HBONE dials that failed (see connection failure reasons in the log)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(pool.stats().dialFailures);
    },
  });
}
