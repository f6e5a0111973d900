import { errorMessage, type ProxyError } from '../errors';
import { Backoff, type BackoffOptions } from '../util/backoff';
import type { TimerHandle } from '../util/clock';
import type { SpiffeId } from './spiffe';
import type { CertState, WorkloadCertificate } from './types';

/** ztunnel's CSR retry policy: ~1s, ×2, 20% jitter, capped at 150s. */
export const CSR_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 150_000, multiplier: 2, jitter: 0.2 };

/** The certificate manager's state for one identity (mutated only by CertManager). */
export interface Entry {
  readonly id: SpiffeId;
  state: CertState;
  /** The serving certificate; null when none is valid. */
  cert: WorkloadCertificate | null;
  /** Why the last fetch failed (or CERT_EXPIRED); null after a success. */
  lastError: ProxyError | null;
  /** fetchCertificate calls waiting for the first result of an initializing entry. */
  waiters: Array<{ resolve: (c: WorkloadCertificate) => void; reject: (e: ProxyError) => void }>;
  inFlight: boolean;
  /** Pending refresh (at 50% lifetime) or retry (backoff) timer. */
  nextFetch: TimerHandle | null;
  expiry: TimerHandle | null;
  readonly backoff: Backoff;
}

/** One /config_dump row (ztunnel's certificate dump fields). */
export interface CertificateDump {
  identity: string;
  state: CertState;
  serialNumber: string | null;
  validFrom: string | null;
  expirationTime: string | null;
  certChain: readonly string[];
  rootCerts: readonly string[];
  lastError: { reason: string; message: string } | null;
}

export function newEntry(id: SpiffeId, backoff: BackoffOptions): Entry {
  return { id, state: 'initializing', cert: null, lastError: null, waiters: [], inFlight: false, nextFetch: null, expiry: null, backoff: new Backoff(backoff) };
}

/** What /config_dump shows for one identity: certificates and state, never a key. */
export function dumpEntry(e: Entry): CertificateDump {
  return {
    identity: e.id.toString(),
    state: e.state,
    serialNumber: e.cert?.serialNumber ?? null,
    validFrom: e.cert ? new Date(e.cert.notBefore).toISOString() : null,
    expirationTime: e.cert ? new Date(e.cert.notAfter).toISOString() : null,
    certChain: e.cert?.chainPem ?? [],
    rootCerts: e.cert?.rootsPem ?? [],
    lastError: e.lastError ? { reason: e.lastError.reason, message: errorMessage(e.lastError) } : null,
  };
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** setTimeout overflows past ~24.8 days; longer waits are re-armed by the caller. */
export function clampDelay(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, ms));
}
