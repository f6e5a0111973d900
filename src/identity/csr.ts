import { generateKeyPairSync } from 'node:crypto';
import type { SpiffeId } from './spiffe';
import { buildCsrDer } from './x509-build';
import { derToPem } from './pem';

/**
 * A fresh key pair and the CSR for one identity. `keyPem` (PKCS#8) never leaves the
 * identity module: the certificate manager hands it to tls.createSecureContext once and
 * drops it. Never log, dump or put it in an error.
 */
export interface CsrBundle {
  readonly csrPem: string;
  readonly keyPem: string;
}

/**
 * ECDSA P-256 key, empty subject, one critical URI SAN = the SPIFFE id, SHA-256
 * signature: ztunnel's CSR, also acceptable to strict RFC 5280 CAs.
 */
export function generateCsr(id: SpiffeId): CsrBundle {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const csr = buildCsrDer(spki, id.toString(), privateKey);
  return { csrPem: derToPem(csr, 'CERTIFICATE REQUEST'), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
