import type { SecureContext } from 'node:tls';
import type { SpiffeId } from './spiffe';

/**
 * A certificate the data path can use. The private key lives only inside `secureContext`
 * (built once per certificate); this object has no key field, so dumping or logging it
 * cannot leak key material.
 */
export interface WorkloadCertificate {
  readonly identity: SpiffeId;
  /** Leaf first, then intermediates (PEM). */
  readonly chainPem: readonly string[];
  /** Trust anchors from the CA response's last element (may hold several during rotation). */
  readonly rootsPem: readonly string[];
  readonly serialNumber: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** key + chain + roots; valid for both the TLS client and server side. */
  readonly secureContext: SecureContext;
}

/** Data-path requests go first, then prefetch of local workloads, then background refresh. */
export type FetchPriority = 'realtime' | 'warmup' | 'background';

export type CertState = 'initializing' | 'available' | 'unavailable';

/** What the data path needs from the certificate manager (a narrow seam: no key material, no CA). */
export interface CertificateSource {
  /** Resolves with a valid certificate, fetching one if needed; rejects with ProxyError(IDENTITY_ERROR|CA_*). */
  fetchCertificate(id: SpiffeId, priority?: FetchPriority): Promise<WorkloadCertificate>;
  /** The current valid certificate, if any, without waiting. */
  findCertificate(id: SpiffeId): WorkloadCertificate | undefined;
}
