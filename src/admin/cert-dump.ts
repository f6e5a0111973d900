import { X509Certificate } from 'node:crypto';
import type { CertificateDump } from '../identity/cert-entry';

/** One certificate as ztunnel's /config_dump shows it. */
export interface ZtunnelCertDump {
  /** The PEM text, base64-encoded (as ztunnel does, so it survives any JSON viewer). */
  readonly pem: string;
  /** Decimal, as ztunnel prints it. */
  readonly serialNumber: string;
  /** RFC 3339, whole seconds, UTC. */
  readonly validFrom: string;
  readonly expirationTime: string;
}

/** One identity's certificates as ztunnel's /config_dump shows them. */
export interface ZtunnelCertsDump {
  readonly identity: string;
  /** `Initializing`, `Available` or `Unavailable: <why>`, ztunnel's spelling. */
  readonly state: string;
  readonly certChain: readonly ZtunnelCertDump[];
  readonly rootCerts: readonly ZtunnelCertDump[];
}

const rfc3339 = (text: string): string => new Date(text).toISOString().replace(/\.\d{3}Z$/, 'Z');

function certDump(pem: string): ZtunnelCertDump {
  const x = new X509Certificate(pem);
  return {
    pem: Buffer.from(pem).toString('base64'),
    serialNumber: BigInt(`0x${x.serialNumber}`).toString(10),
    validFrom: rfc3339(x.validFrom),
    expirationTime: rfc3339(x.validTo),
  };
}

/**
 * The certificate manager's rows in ztunnel's shape, sorted by identity: chain and roots
 * only while a certificate is available, as ztunnel shows them. Never a key.
 */
export function ztunnelCertificates(rows: readonly CertificateDump[]): ZtunnelCertsDump[] {
  return [...rows]
    .sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0))
    .map((r) => {
      const available = r.state === 'available' && r.certChain.length > 0;
      const state = available ? 'Available' : r.state === 'initializing' ? 'Initializing' : `Unavailable: ${r.lastError?.message ?? 'no valid certificate'}`;
      return { identity: r.identity, state, certChain: available ? r.certChain.map(certDump) : [], rootCerts: available ? r.rootCerts.map(certDump) : [] };
    });
}
