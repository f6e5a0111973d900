import { Counter, Gauge, type Registry } from 'prom-client';
import type { Reason } from '../errors';
import type { Clock } from '../util/clock';

/** One identity's current certificate, as the expiry gauge needs it. */
export interface CertificateExpiry {
  readonly identity: string;
  readonly notAfter: number;
}

/** What the certificate manager records; counters resolved once, gauge computed at scrape. */
export interface IdentityMetrics {
  recordFetch(result: 'success' | 'failure', reason: Reason | '-'): void;
}

/**
 * Registers the identity metrics on the composition root's registry:
 * - ztunnel_ts_certificate_fetch_total{result, reason} (reason is a Reason code or "-");
 * - ztunnel_ts_certificate_expiry_seconds{identity}: seconds until the current certificate
 *   expires, computed at scrape time from `expiries()`, so a forgotten identity disappears
 *   and the value never goes stale between fetches (so an alert can fire before a certificate expires).
 */
export function createIdentityMetrics(registry: Registry, expiries: () => Iterable<CertificateExpiry>, clock: Clock): IdentityMetrics {
  const fetches = new Counter({
    name: 'ztunnel_ts_certificate_fetch_total',
    help: 'Workload certificate requests to the CA, by result and failure reason',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  new Gauge({
    name: 'ztunnel_ts_certificate_expiry_seconds',
    help: 'Seconds until the current workload certificate of each identity expires',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      const now = clock.now();
      for (const e of expiries()) this.labels(e.identity).set(Math.round((e.notAfter - now) / 1000));
    },
  });
  return {
    recordFetch: (result, reason) => fetches.labels(result, reason).inc(),
  };
}
