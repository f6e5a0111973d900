import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ProxyError, REASONS, classifyError, errorMessage } from '../errors';
import type { BackoffOptions } from '../util/backoff';
import type { Clock } from '../util/clock';
import type { Component } from '../app/component';
import { createIdentityMetrics, type IdentityMetrics } from '../metrics/identity-metrics';
import type { CaClient } from './ca-client';
import { buildWorkloadCertificate } from './certificate';
import { generateCsr, type CsrBundle } from './csr';
import { FetchQueue } from './fetch-queue';
import { CSR_BACKOFF, clampDelay, dumpEntry, newEntry, type CertificateDump, type Entry } from './cert-entry';
import type { SpiffeId } from './spiffe';
import type { CertificateSource, FetchPriority, WorkloadCertificate } from './types';

export type { CertificateDump } from './cert-entry';

export interface CertManagerOptions {
  readonly caClient: CaClient;
  /** Shown in logs and errors (never a secret). */
  readonly caAddress: string;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  /** Node mode: true for workload identities (metadata ImpersonatedIdentity). */
  readonly impersonate: (id: SpiffeId) => boolean;
  /** SECRET_TTL in seconds. */
  readonly validitySeconds: number;
  /** Concurrent CSRs (ztunnel: 8). */
  readonly maxConcurrent?: number;
  /** Retry policy after a failed fetch (ztunnel: 1s, ×2, 20% jitter, cap 150s). */
  readonly backoff?: BackoffOptions;
  /** Key + CSR source (default: a fresh P-256 key per request, generateCsr). */
  readonly csrFactory?: (id: SpiffeId) => CsrBundle;
  /**
   * The node's data-path worker threads build their own SecureContext from the same key
   * and chain (a SecureContext cannot cross threads): called with every new certificate's
   * key, in memory only, before the certificate is served.
   */
  readonly shareKey?: (cert: WorkloadCertificate, keyPem: string) => void;
}

/** Called with each new certificate (previous is undefined for an identity's first one). */
export type RotateListener = (cert: WorkloadCertificate, previous: WorkloadCertificate | undefined) => void;

/**
 * Certificates per identity (ztunnel's SecretManager).
 *
 * Invariants:
 * - at most one fetch in flight or queued per identity; at most `maxConcurrent` in flight;
 * - a certificate keeps serving after failed refreshes until its notAfter; then the entry
 *   is unavailable and fetchCertificate fails closed (CERT_EXPIRED or the last CA reason);
 * - every failure schedules a retry with capped backoff, so the manager recovers alone;
 * - a new certificate is a new WorkloadCertificate (new SecureContext); old ones are never
 *   mutated, so connections already established keep theirs;
 * - private keys exist only as a local in fetch() and inside the SecureContext (and, with
 *   data-path worker threads, in the shareKey hand-off to them).
 */
export class CertManager implements CertificateSource, Component {
  readonly name = 'certificates';
  private readonly entries = new Map<string, Entry>();
  private readonly queue = new FetchQueue<Entry>();
  private readonly rotateListeners = new Set<RotateListener>();
  private readonly stateListeners = new Set<() => void>();
  private readonly metrics: IdentityMetrics;
  private readonly log: Logger;
  private readonly maxConcurrent: number;
  /** Identities of workloads on this node (syncLocalIdentities). */
  private local = new Map<string, SpiffeId>();
  private active = 0;
  private closed = false;

  constructor(private readonly opts: CertManagerOptions) {
    this.maxConcurrent = opts.maxConcurrent ?? 8;
    this.log = opts.logger.child({ scope: 'identity' });
    this.metrics = createIdentityMetrics(opts.registry, () => this.expiries(), opts.clock);
  }

  async fetchCertificate(id: SpiffeId, priority: FetchPriority = 'realtime'): Promise<WorkloadCertificate> {
    if (this.closed) throw new ProxyError('IDENTITY_ERROR', `certificate manager is closed; no certificate for ${id}`, { identity: id.toString() });
    const e = this.entries.get(id.toString()) ?? this.create(id);
    this.expireIfDue(e);
    if (e.state === 'available' && e.cert) return e.cert;
    if (e.state === 'unavailable') throw e.lastError ?? new ProxyError('IDENTITY_ERROR', `no certificate for ${id}`, { identity: id.toString() });
    return new Promise<WorkloadCertificate>((resolve, reject) => {
      e.waiters.push({ resolve, reject });
      this.enqueue(e, priority);
    });
  }

  findCertificate(id: SpiffeId): WorkloadCertificate | undefined {
    const e = this.entries.get(id.toString());
    if (!e) return undefined;
    this.expireIfDue(e);
    return e.cert ?? undefined;
  }

  /** Starts Warmup fetches for identities not tracked yet. */
  prefetch(ids: Iterable<SpiffeId>): void {
    for (const id of ids) {
      if (this.closed || this.entries.has(id.toString())) continue;
      this.enqueue(this.create(id), 'warmup');
    }
  }

  /** Drops an identity: timers cancelled, waiters rejected, its expiry gauge removed. */
  forget(id: SpiffeId): void {
    const e = this.entries.get(id.toString());
    if (!e) return;
    this.entries.delete(id.toString());
    this.local.delete(id.toString());
    this.queue.remove(e);
    this.clearTimers(e);
    this.settleWaiters(e, new ProxyError('IDENTITY_ERROR', `identity ${id} was forgotten (no local workload uses it)`, { identity: id.toString() }));
    this.log.info({ identity: id.toString() }, 'forgot identity');
    this.notifyState();
  }

  /** Prefetches identities that appeared on this node and forgets those that left. */
  syncLocalIdentities(ids: Iterable<SpiffeId>): void {
    const next = new Map<string, SpiffeId>();
    for (const id of ids) next.set(id.toString(), id);
    for (const [key, id] of this.local) if (!next.has(key)) this.forget(id);
    this.prefetch(next.values());
    this.local = next;
  }

  /**
   * Resolves once every given identity has a certificate (for the "certificates" readiness
   * task). Starts fetches for untracked ones; an identity forgotten meanwhile stops counting.
   */
  waitForIdentities(ids: Iterable<SpiffeId>): Promise<void> {
    const wanted = [...ids];
    this.prefetch(wanted);
    return new Promise((resolve) => {
      const check = (): void => {
        const pending = wanted.filter((id) => {
          const e = this.entries.get(id.toString());
          return e !== undefined && e.state !== 'available';
        });
        if (pending.length === 0 || this.closed) {
          this.stateListeners.delete(check);
          resolve();
        }
      };
      this.stateListeners.add(check);
      check();
    });
  }

  /**
   * Why some of `ids` have no certificate, for readiness: how many, and the CA's last error
   * (`CA_UNREACHABLE: …`) when there is one; null when every one has a certificate.
   */
  missingSummary(ids: Iterable<SpiffeId>): string | null {
    let wanted = 0;
    const missing: Entry[] = [];
    for (const id of ids) {
      wanted++;
      const e = this.entries.get(id.toString());
      if (!e) continue;
      this.expireIfDue(e);
      if (!e.cert) missing.push(e);
    }
    if (missing.length === 0) return null;
    const failed = missing.find((e) => e.lastError !== null);
    const cause = failed?.lastError ? `; ${failed.lastError.reason}: ${errorMessage(failed.lastError)}` : '; waiting for the CA';
    return `${missing.length} of ${wanted} local identities without a certificate from CA ${this.opts.caAddress}${cause}`;
  }

  /** Subscribes to new certificates; returns the unsubscribe function. */
  onRotate(listener: RotateListener): () => void {
    this.rotateListeners.add(listener);
    return () => this.rotateListeners.delete(listener);
  }

  /** /config_dump section: certificates and state per identity, never a key. */
  dump(): CertificateDump[] {
    return [...this.entries.values()].sort((a, b) => (a.id.toString() < b.id.toString() ? -1 : 1)).map(dumpEntry);
  }

  /**
   * Re-issues every known identity now instead of at half-life: the admin action after a
   * CA root or intermediate rotation (ztunnel itself only notices at TTL/2).
   * Current certificates keep serving until each replacement arrives. Returns how many
   * identities were queued (ones already being fetched are left as they are).
   */
  reissueAll(): number {
    let queued = 0;
    for (const e of this.entries.values()) {
      if (e.inFlight || this.queue.has(e)) continue;
      e.backoff.reset();
      this.enqueue(e, 'warmup');
      queued++;
    }
    this.log.info({ identities: queued }, 're-issuing workload certificates on request');
    return queued;
  }

  async start(): Promise<void> {}

  /** Stops timers and the CA channel; pending fetchCertificate calls reject. */
  async close(): Promise<void> {
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.entries.values()) {
      this.clearTimers(e);
      this.queue.remove(e);
      this.settleWaiters(e, new ProxyError('IDENTITY_ERROR', `certificate manager closed while fetching ${e.id}`, { identity: e.id.toString() }));
    }
    this.notifyState();
    this.opts.caClient.close();
  }

  private create(id: SpiffeId): Entry {
    const e = newEntry(id, this.opts.backoff ?? CSR_BACKOFF);
    this.entries.set(id.toString(), e);
    return e;
  }

  private enqueue(e: Entry, priority: FetchPriority): void {
    if (this.closed || e.inFlight || this.entries.get(e.id.toString()) !== e) return;
    if (e.nextFetch) {
      this.opts.clock.clearTimeout(e.nextFetch);
      e.nextFetch = null;
    }
    this.queue.push(e, priority);
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.active < this.maxConcurrent) {
      const e = this.queue.shift();
      if (!e) return;
      this.active++;
      e.inFlight = true;
      void this.fetch(e).finally(() => {
        this.active--;
        e.inFlight = false;
        this.pump();
      });
    }
  }

  /** One CSR round trip. The key is a local here and ends up only in the SecureContext. */
  private async fetch(e: Entry): Promise<void> {
    const started = process.hrtime.bigint();
    let cert: WorkloadCertificate;
    try {
      const { csrPem, keyPem } = (this.opts.csrFactory ?? generateCsr)(e.id);
      const res = await this.opts.caClient.createCertificate({ identity: e.id, csrPem, impersonate: this.opts.impersonate(e.id), validitySeconds: this.opts.validitySeconds });
      cert = buildWorkloadCertificate({ identity: e.id, keyPem, chainPem: res.chainPem, rootsPem: res.rootsPem, now: this.opts.clock.now(), source: this.opts.caAddress });
      if (this.isLive(e)) this.opts.shareKey?.(cert, keyPem);
    } catch (err) {
      if (this.isLive(e)) this.onFailed(e, this.asProxyError(e, err));
      return;
    }
    if (this.isLive(e)) this.onFetched(e, cert, Number(process.hrtime.bigint() - started) / 1e6);
  }

  private onFetched(e: Entry, cert: WorkloadCertificate, latencyMs: number): void {
    const previous = e.cert ?? undefined;
    this.clearTimers(e);
    e.cert = cert;
    e.state = 'available';
    e.lastError = null;
    e.backoff.reset();
    this.metrics.recordFetch('success', '-');
    const refreshAt = cert.notBefore + (cert.notAfter - cert.notBefore) / 2;
    this.armRefresh(e, refreshAt);
    this.armExpiry(e, cert);
    this.log.info(
      { identity: e.id.toString(), serial: cert.serialNumber, notBefore: new Date(cert.notBefore).toISOString(), notAfter: new Date(cert.notAfter).toISOString(), refreshAt: new Date(refreshAt).toISOString(), latencyMs: Math.round(latencyMs * 10) / 10, rotated: previous !== undefined },
      previous ? 'rotated workload certificate' : 'fetched workload certificate',
    );
    this.settleWaiters(e, cert);
    for (const l of this.rotateListeners) {
      try {
        l(cert, previous);
      } catch (err) {
        this.log.error({ identity: e.id.toString(), err: errorMessage(err) }, 'rotate listener failed');
      }
    }
    this.notifyState();
  }

  private onFailed(e: Entry, err: ProxyError): void {
    this.metrics.recordFetch('failure', err.reason);
    e.lastError = err;
    const serving = e.cert !== null && this.opts.clock.now() < e.cert.notAfter;
    if (!serving) {
      e.cert = null;
      e.state = 'unavailable';
    }
    const delay = e.backoff.next();
    e.nextFetch = this.opts.clock.setTimeout(() => {
      e.nextFetch = null;
      this.enqueue(e, serving ? 'background' : 'warmup');
    }, delay);
    e.nextFetch.unref?.();
    this.log.warn(
      { identity: e.id.toString(), reason: err.reason, hint: REASONS[err.reason].hint, err: errorMessage(err), retryInMs: delay, attempt: e.backoff.attempts, servingUntil: serving && e.cert ? new Date(e.cert.notAfter).toISOString() : null },
      'workload certificate fetch failed',
    );
    this.settleWaiters(e, err);
    this.notifyState();
  }

  /** Fail closed at notAfter: no replacement means no certificate, never an expired one. */
  private expireIfDue(e: Entry): void {
    if (!e.cert || this.opts.clock.now() < e.cert.notAfter) return;
    const old = e.cert;
    e.cert = null;
    e.state = 'unavailable';
    const last = e.lastError ? ` (last CA error: ${e.lastError.reason})` : '';
    e.lastError = new ProxyError('CERT_EXPIRED', `certificate ${old.serialNumber} for ${e.id} expired at ${new Date(old.notAfter).toISOString()} and no replacement could be fetched from CA ${this.opts.caAddress}${last}`, { identity: e.id.toString(), serial: old.serialNumber });
    this.log.warn({ identity: e.id.toString(), serial: old.serialNumber, reason: 'CERT_EXPIRED', hint: REASONS.CERT_EXPIRED.hint }, 'workload certificate expired without replacement');
    if (!e.inFlight && !this.queue.has(e) && !e.nextFetch) this.enqueue(e, 'warmup');
    this.notifyState();
  }

  /** Timers are capped (setTimeout overflows past ~24.8 days) and re-armed until due. */
  private armRefresh(e: Entry, at: number): void {
    e.nextFetch = this.opts.clock.setTimeout(() => {
      e.nextFetch = null;
      if (this.opts.clock.now() < at) this.armRefresh(e, at);
      else this.enqueue(e, 'background');
    }, clampDelay(at - this.opts.clock.now()));
    e.nextFetch.unref?.();
  }

  private armExpiry(e: Entry, cert: WorkloadCertificate): void {
    e.expiry = this.opts.clock.setTimeout(() => {
      e.expiry = null;
      if (this.opts.clock.now() < cert.notAfter) this.armExpiry(e, cert);
      else this.expireIfDue(e);
    }, clampDelay(cert.notAfter - this.opts.clock.now()));
    e.expiry.unref?.();
  }

  private settleWaiters(e: Entry, result: WorkloadCertificate | ProxyError): void {
    const waiters = e.waiters;
    e.waiters = [];
    for (const w of waiters) {
      if (result instanceof ProxyError) w.reject(result);
      else w.resolve(result);
    }
  }

  private isLive(e: Entry): boolean {
    return !this.closed && this.entries.get(e.id.toString()) === e;
  }

  private asProxyError(e: Entry, err: unknown): ProxyError {
    if (err instanceof ProxyError) return err;
    return new ProxyError(classifyError(err), `certificate for ${e.id} from CA ${this.opts.caAddress}: ${errorMessage(err)}`, { identity: e.id.toString() }, err);
  }

  private clearTimers(e: Entry): void {
    if (e.nextFetch) this.opts.clock.clearTimeout(e.nextFetch);
    if (e.expiry) this.opts.clock.clearTimeout(e.expiry);
    e.nextFetch = null;
    e.expiry = null;
  }

  private notifyState(): void {
    for (const l of [...this.stateListeners]) l();
  }

  private *expiries(): Iterable<{ identity: string; notAfter: number }> {
    for (const e of this.entries.values()) if (e.cert) yield { identity: e.id.toString(), notAfter: e.cert.notAfter };
  }
}
