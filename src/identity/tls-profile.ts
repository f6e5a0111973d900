import type { SecureContextOptions } from 'node:tls';

/** TLS 1.3 suites ztunnel allows; nothing else is negotiated. */
export const HBONE_CIPHERSUITES = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

/**
 * The HBONE TLS profile, applied where each WorkloadCertificate's SecureContext is built:
 * Node applies min/max version and cipher suites per context, not per socket, so they
 * cannot be forced on the connection later (Node spells the TLS 1.3 suite list `ciphers`).
 * The transport still re-checks the negotiated version and suite after every handshake.
 */
export const HBONE_SECURE_CONTEXT_OPTIONS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: HBONE_CIPHERSUITES,
} as const satisfies SecureContextOptions;
