import { ProxyError } from '../errors';
import { buildWorkloadCertificate } from '../identity/certificate';
import { SpiffeId } from '../identity/spiffe';
import type { CertificateSource, FetchPriority, WorkloadCertificate } from '../identity/types';
import type { Clock } from '../util/clock';
import type { CertMaterial, FromWorker } from './messages';

interface Waiter {
  readonly identity: string;
  readonly resolve: (c: WorkloadCertificate) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * A worker thread's certificates: the main thread's CertManager fetches, refreshes and
 * rotates them; every new one arrives here with its key, and this thread builds its own
 * SecureContext from it (a SecureContext cannot cross threads). A miss asks the main thread,
 * which answers once the certificate exists (its material arrives first) or with the
 * manager's failure reason.
 */
export class WorkerCertificates implements CertificateSource {
  private readonly certs = new Map<string, WorkloadCertificate>();
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;

  constructor(
    private readonly send: (m: FromWorker) => void,
    private readonly clock: Clock,
    private readonly source: string,
  ) {}

  /** A certificate and its key from the main thread (a new one replaces the old for new connections). */
  add(m: CertMaterial): void {
    const identity = SpiffeId.parse(m.identity);
    const cert = buildWorkloadCertificate({ identity, keyPem: m.keyPem, chainPem: m.chainPem, rootsPem: m.rootsPem, now: this.clock.now(), source: this.source });
    const held = this.certs.get(m.identity);
    if (!held || held.notBefore <= cert.notBefore) this.certs.set(m.identity, cert);
  }

  findCertificate(id: SpiffeId): WorkloadCertificate | undefined {
    const c = this.certs.get(id.toString());
    return c && c.notAfter > this.clock.now() ? c : undefined;
  }

  fetchCertificate(id: SpiffeId, _priority?: FetchPriority): Promise<WorkloadCertificate> {
    const held = this.findCertificate(id);
    if (held) return Promise.resolve(held);
    return new Promise((resolve, reject) => {
      const reqId = this.nextId++;
      this.waiting.set(reqId, { identity: id.toString(), resolve, reject });
      this.send({ t: 'cert-request', id: reqId, identity: id.toString() });
    });
  }

  /** The main thread's answer to a request: the material came first, or the fetch failed. */
  answer(reqId: number, failure: { reason: ProxyError['reason']; message: string } | null): void {
    const w = this.waiting.get(reqId);
    if (!w) return;
    this.waiting.delete(reqId);
    if (failure) return w.reject(new ProxyError(failure.reason, failure.message, { identity: w.identity }));
    const c = this.certs.get(w.identity);
    if (c && c.notAfter > this.clock.now()) w.resolve(c);
    else w.reject(new ProxyError('IDENTITY_ERROR', `certificate for ${w.identity} was issued but did not reach this worker thread`, { identity: w.identity }));
  }
}
