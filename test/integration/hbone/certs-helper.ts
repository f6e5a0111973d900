import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { CertificateSource, WorkloadCertificate } from '../../../src/identity/types';
import { HBONE_SECURE_CONTEXT_OPTIONS } from '../../../src/transport/hbone/tls';

/**
 * Test-only certificate minting with the openssl CLI (a real root + P-256 leaves with
 * SPIFFE URI SANs), until the project's dev CA exists. Everything lives in a temp dir
 * removed by `cleanup()`.
 */
export class TestCa {
  readonly dir: string;
  readonly rootPem: string;
  private n = 0;

  constructor(name = 'test-root') {
    this.dir = mkdtempSync(join(tmpdir(), 'hbone-certs-'));
    this.openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', this.path('root.key')]);
    this.openssl([
      'req', '-x509', '-new', '-key', this.path('root.key'), '-subj', `/O=ztunnel-ts-test/CN=${name}`, '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', this.path('root.pem'),
    ]);
    this.rootPem = readFileSync(this.path('root.pem'), 'utf8');
  }

  /** A leaf for `uris` (URI SANs, in order), signed by this root. `trustRoots` defaults to this root. */
  issue(uris: readonly string[], trustRoots: readonly string[] = [this.rootPem]): WorkloadCertificate {
    const id = ++this.n;
    const key = this.path(`leaf${id}.key`);
    const csr = this.path(`leaf${id}.csr`);
    const ext = this.path(`leaf${id}.ext`);
    const pem = this.path(`leaf${id}.pem`);
    this.openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    this.openssl(['req', '-new', '-key', key, '-subj', '/O=ztunnel-ts-test', '-out', csr]);
    writeFileSync(
      ext,
      `subjectAltName=critical,${uris.map((u) => `URI:${u}`).join(',')}\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n`,
    );
    this.openssl(['x509', '-req', '-in', csr, '-CA', this.path('root.pem'), '-CAkey', this.path('root.key'), '-set_serial', String(1000 + id), '-days', '1', '-extfile', ext, '-out', pem]);
    const certPem = readFileSync(pem, 'utf8');
    const keyPem = readFileSync(key, 'utf8');
    const x = new X509Certificate(certPem);
    const identity = SpiffeId.tryParse(uris[0] ?? '') ?? SpiffeId.of('invalid.test', 'none', 'none');
    return {
      identity,
      chainPem: [certPem],
      rootsPem: [...trustRoots],
      serialNumber: x.serialNumber,
      notBefore: Date.parse(x.validFrom),
      notAfter: Date.parse(x.validTo),
      secureContext: createSecureContext({ key: keyPem, cert: certPem, ca: [...trustRoots], ...HBONE_SECURE_CONTEXT_OPTIONS }),
    };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private path(f: string): string {
    return join(this.dir, f);
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

/** A CertificateSource over a fixed map (the real CertManager is another stream's). */
export class StaticCerts implements CertificateSource {
  private readonly byId = new Map<string, WorkloadCertificate>();
  fetches = 0;
  add(c: WorkloadCertificate): this {
    this.byId.set(c.identity.toString(), c);
    return this;
  }
  async fetchCertificate(id: SpiffeId): Promise<WorkloadCertificate> {
    this.fetches++;
    const c = this.byId.get(id.toString());
    if (!c) throw new Error(`no test certificate for ${id.toString()}`);
    return c;
  }
  findCertificate(id: SpiffeId): WorkloadCertificate | undefined {
    return this.byId.get(id.toString());
  }
}
