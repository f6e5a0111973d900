import { X509Certificate, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { loadOrCreateRoot } from '../../src/ca/root';
import { OID } from '../../src/identity/der';
import { derToPem } from '../../src/identity/pem';
import type { SpiffeId } from '../../src/identity/spiffe';
import { HBONE_SECURE_CONTEXT_OPTIONS } from '../../src/identity/tls-profile';
import type { CertificateSource, WorkloadCertificate } from '../../src/identity/types';
import { buildCertificateDer, buildName, extension, keyIdentifier, randomSerial } from '../../src/identity/x509-build';

/** A signing CA: the mesh root or an intermediate made here. */
export interface TestIssuer {
  readonly certPem: string;
  readonly subjectDer: Buffer;
  readonly keyId: Buffer;
  readonly key: KeyObject;
}

export interface LeafSpec {
  /** URI SANs in certificate order (any strings: malformed and foreign ones on purpose). */
  readonly uris: readonly string[];
  readonly notBefore?: number;
  readonly notAfter?: number;
  /** Defaults to the mesh root. */
  readonly issuer?: TestIssuer;
}

const HOUR = 3600_000;

/**
 * Certificates signed by a test mesh's own dev-CA root (its CA_DIR key), built with the
 * project's x509 builder: leaves a real CA would never issue (two SPIFFE SANs, expired,
 * not yet valid, issued by an intermediate the chain leaves out), to present to the real
 * node proxy and its pool.
 */
export class MeshCerts {
  private constructor(readonly root: TestIssuer) {}

  /** Loads the root a dev CA created in `caDir`. */
  static async load(caDir: string): Promise<MeshCerts> {
    const root = await loadOrCreateRoot(caDir, 'cluster.local', Date.now());
    if (root.created) throw new Error(`${caDir} held no dev CA root; start the CA first`);
    return new MeshCerts(root);
  }

  /** A CA certificate signed by the root. */
  intermediate(name: string): TestIssuer {
    return caCertificate(name, this.root);
  }

  /** A self-signed CA that is not the mesh root (another mesh's, or an attacker's). */
  foreignRoot(name: string): TestIssuer {
    return caCertificate(name, null);
  }

  /**
   * A workload certificate (leaf shaped like the dev CA's) for `spec`, presenting `extraChain`
   * after the leaf and trusting the mesh root. `identity` only keys the test's cert source.
   */
  workload(identity: SpiffeId, spec: LeafSpec, extraChain: readonly string[] = []): WorkloadCertificate {
    const issuer = spec.issuer ?? this.root;
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const now = Date.now();
    const der = buildCertificateDer(
      {
        serial: randomSerial(),
        issuerName: issuer.subjectDer,
        subjectName: buildName({}),
        notBefore: spec.notBefore ?? now - 60_000,
        notAfter: spec.notAfter ?? now + HOUR,
        spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
        extensions: [
          extension.basicConstraints(false),
          extension.keyUsage(['digitalSignature', 'keyEncipherment']),
          extension.extKeyUsage([OID.serverAuth, OID.clientAuth]),
          extension.subjectAltName(spec.uris.map((uri) => ({ uri })), true),
          extension.authorityKeyId(issuer.keyId),
        ],
      },
      issuer.key,
    );
    const leafPem = derToPem(der, 'CERTIFICATE');
    const chainPem = [leafPem, ...extraChain];
    const x = new X509Certificate(leafPem);
    return Object.freeze({
      identity,
      chainPem,
      rootsPem: [this.root.certPem],
      serialNumber: x.serialNumber,
      notBefore: Date.parse(x.validFrom),
      notAfter: Date.parse(x.validTo),
      secureContext: createSecureContext({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: chainPem.join(''), ca: [this.root.certPem], ...HBONE_SECURE_CONTEXT_OPTIONS }),
    });
  }
}

/** A CA certificate for `name`, signed by `issuer` (self-signed when null). */
function caCertificate(name: string, issuer: TestIssuer | null): TestIssuer {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const subject = buildName({ o: 'cluster.local', cn: name });
  const now = Date.now();
  const der = buildCertificateDer(
    {
      serial: randomSerial(),
      issuerName: issuer?.subjectDer ?? subject,
      subjectName: subject,
      notBefore: now - HOUR,
      notAfter: now + 24 * HOUR,
      spkiDer: spki,
      extensions: [extension.basicConstraints(true), extension.keyUsage(['digitalSignature', 'keyCertSign', 'cRLSign']), extension.subjectKeyId(spki), ...(issuer ? [extension.authorityKeyId(issuer.keyId)] : [])],
    },
    issuer?.key ?? privateKey,
  );
  return { certPem: derToPem(der, 'CERTIFICATE'), subjectDer: subject, keyId: keyIdentifier(spki), key: privateKey };
}

/** A CertificateSource that answers every identity with one fixed certificate (a forged or broken client). */
export class FixedCertSource implements CertificateSource {
  constructor(private readonly cert: WorkloadCertificate) {}
  async fetchCertificate(): Promise<WorkloadCertificate> {
    return this.cert;
  }
  findCertificate(): WorkloadCertificate | undefined {
    return this.cert;
  }
}
