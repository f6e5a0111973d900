import { X509Certificate } from 'node:crypto';
import { OID } from '../identity/der';
import { derToPem } from '../identity/pem';
import type { SpiffeId } from '../identity/spiffe';
import { buildCertificateDer, buildName, extension, randomSerial } from '../identity/x509-build';
import type { RootAuthority } from './root';

export interface IssuedLeaf {
  readonly pem: string;
  readonly serialNumber: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Leaves are backdated this much so a peer whose clock is slightly behind accepts them. */
export const LEAF_BACKDATE_MS = 60_000;

/**
 * A workload certificate: empty subject, the authorised SPIFFE id as the only (critical)
 * URI SAN, serverAuth + clientAuth (HBONE uses one certificate for both directions),
 * random serial, signed by the root.
 */
export function issueLeaf(root: RootAuthority, spkiDer: Buffer, identity: SpiffeId, validityMs: number, now: number): IssuedLeaf {
  const notBefore = now - LEAF_BACKDATE_MS;
  const notAfter = now + validityMs;
  const certDer = buildCertificateDer(
    {
      serial: randomSerial(),
      issuerName: root.subjectDer,
      subjectName: buildName({}),
      notBefore,
      notAfter,
      spkiDer,
      extensions: [
        extension.basicConstraints(false),
        extension.keyUsage(['digitalSignature', 'keyEncipherment']),
        extension.extKeyUsage([OID.serverAuth, OID.clientAuth]),
        extension.subjectAltName([{ uri: identity.toString() }], true),
        extension.authorityKeyId(root.keyId),
      ],
    },
    root.key,
  );
  const pem = derToPem(certDer, 'CERTIFICATE');
  const x = new X509Certificate(pem);
  return { pem, serialNumber: x.serialNumber, notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo) };
}
