import { Client, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CaChannelCredentials, grpcTarget, readRootPem, readToken, targetHost } from './ca-credentials';
import { ProxyError, errorMessage, type Reason } from '../errors';
import type { SpiffeId } from './spiffe';
import { IMPERSONATED_IDENTITY, loadCaService, type CaServiceDefinition, type IstioCertificateRequest, type IstioCertificateResponse } from './ca-proto';
import { splitPemCertificates } from './pem';
import { inspectCertificate } from './certificate';

export interface CaRequest {
  readonly identity: SpiffeId;
  readonly csrPem: string;
  /** Node mode: ask on behalf of a workload (metadata ImpersonatedIdentity). */
  readonly impersonate: boolean;
  readonly validitySeconds: number;
}

export interface CaResponse {
  /** Leaf first, then intermediates. */
  readonly chainPem: readonly string[];
  /** Every root in the response's last element. */
  readonly rootsPem: readonly string[];
}

/** The seam between the certificate manager and a CA (so tests and other CAs plug in). */
export interface CaClient {
  /** Rejects with ProxyError CA_UNREACHABLE | CA_TLS | CA_AUTH | CA_REJECTED | CA_BAD_RESPONSE. */
  createCertificate(req: CaRequest): Promise<CaResponse>;
  close(): void;
}

export interface IstioCaClientOptions {
  /** CA_ADDRESS: host:port, `https://` optional. */
  readonly address: string;
  /** CA_ROOT_CA: a PEM file path (re-read on every call), inline PEM, or SYSTEM. */
  readonly rootCa: string;
  /** ALT_CA_HOSTNAME: verify the CA certificate against this name. */
  readonly altHostname: string | null;
  /** AUTH_TOKEN: a file path (re-read on every call) or a literal token. */
  readonly authToken: string;
  readonly clusterId: string;
  /** CA_HEADER_<NAME>: extra gRPC metadata on every call, as (lower-case name, value). */
  readonly headers?: readonly (readonly [string, string])[];
  /** Time to establish the channel (ztunnel: 5s). */
  readonly connectTimeoutMs?: number;
  /** Time for the CA to answer once connected. */
  readonly requestTimeoutMs?: number;
}

/** Text grpc-js puts in `details` when the TLS handshake to the CA fails verification. */
const TLS_FAILURE_TEXT = /certificate|self[- ]signed|altnames|unable to verify|SSL|TLS|handshake/i;

/** Maps a gRPC failure to the reason users grep for (errors.ts). */
export function reasonForGrpcError(err: ServiceError): Reason {
  if (err.code === status.UNAVAILABLE && TLS_FAILURE_TEXT.test(err.details ?? '')) return 'CA_TLS';
  switch (err.code) {
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
    case status.CANCELLED:
      return 'CA_UNREACHABLE';
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return 'CA_AUTH';
    default:
      return 'CA_REJECTED';
  }
}

/**
 * Istio CA client: unary CreateCertificate over TLS with grpc-js. The root file and the
 * token file are re-read on every call, so a rotated istiod root or projected token is
 * picked up without a restart (the channel is rebuilt when the root changes).
 */
export class IstioCaClient implements CaClient {
  private readonly def: CaServiceDefinition;
  private readonly target: string;
  /** The channel and the root PEM it was built with; null until the first call. */
  private channel: { client: Client; rootKey: string } | null = null;
  private closed = false;

  constructor(private readonly opts: IstioCaClientOptions) {
    this.def = loadCaService();
    this.target = grpcTarget(opts.address);
  }

  async createCertificate(req: CaRequest): Promise<CaResponse> {
    if (this.closed) throw this.error('CA_UNREACHABLE', req, 'the CA client is closed');
    const client = await this.client(req);
    const metadata = new Metadata();
    const token = await this.token(req);
    if (token !== null) metadata.set('authorization', `Bearer ${token}`);
    metadata.set('clusterid', this.opts.clusterId);
    for (const [name, value] of this.opts.headers ?? []) metadata.add(name, value);
    const body: IstioCertificateRequest = { csr: req.csrPem, validity_duration: req.validitySeconds };
    if (req.impersonate) body.metadata = { fields: { [IMPERSONATED_IDENTITY]: { stringValue: req.identity.toString() } } };
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 5000) + (this.opts.requestTimeoutMs ?? 10_000);
    const m = this.def.createCertificate;
    const res = await new Promise<IstioCertificateResponse>((resolve, reject) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, body, metadata, { deadline }, (err, value) => {
        if (err) {
          const reason = reasonForGrpcError(err);
          // The manager's backoff is the retry policy: a fresh channel per retry, so
          // grpc-js's own reconnect backoff (up to 120s) never delays recovery.
          if (reason === 'CA_UNREACHABLE' || reason === 'CA_TLS') this.dropChannel(client);
          reject(this.error(reason, req, `${status[err.code] ?? err.code}: ${err.details}`, err));
        }
        else if (!value) reject(this.error('CA_BAD_RESPONSE', req, 'empty response'));
        else resolve(value);
      });
    });
    return this.parseResponse(req, res);
  }

  close(): void {
    this.closed = true;
    this.channel?.client.close();
    this.channel = null;
  }

  private dropChannel(client: Client): void {
    if (this.channel?.client !== client) return;
    this.channel = null;
    client.close();
  }

  private parseResponse(req: CaRequest, res: IstioCertificateResponse): CaResponse {
    const elements = res.cert_chain ?? [];
    if (elements.length < 2) throw this.error('CA_BAD_RESPONSE', req, `cert_chain has ${elements.length} element(s); expected leaf … root`);
    const rootsPem = splitPemCertificates(elements[elements.length - 1] as string);
    const chainPem = elements.slice(0, -1).flatMap((e) => splitPemCertificates(e));
    if (rootsPem.length === 0 || chainPem.length === 0) throw this.error('CA_BAD_RESPONSE', req, 'cert_chain holds no PEM certificate in the leaf or root position');
    let uris: readonly string[];
    try {
      uris = inspectCertificate(chainPem[0] as string).uris;
    } catch (err) {
      throw this.error('CA_BAD_RESPONSE', req, `leaf does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (uris.length !== 1 || uris[0] !== req.identity.toString()) throw this.error('CA_BAD_RESPONSE', req, `leaf URI SAN ${JSON.stringify(uris)} is not the requested identity`);
    return { chainPem, rootsPem };
  }

  private async client(req: CaRequest): Promise<Client> {
    const root = await this.rootPem(req);
    const rootKey = root ?? 'SYSTEM';
    if (this.channel && this.channel.rootKey === rootKey) return this.channel.client;
    this.channel?.client.close();
    const creds = new CaChannelCredentials(root, targetHost(this.target), this.opts.altHostname);
    // A local subchannel pool: with grpc-js's process-global pool a dropped channel's
    // connection (and its reconnect backoff) would be shared by the next channel and would
    // outlive close(), keeping sockets open after the client is gone.
    const options: Record<string, string | number> = { 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000, 'grpc.use_local_subchannel_pool': 1 };
    if (this.opts.altHostname) options['grpc.default_authority'] = this.opts.altHostname;
    // close() may have run while the root file was being read: never open a channel after
    // it, or that channel's sockets and timers would keep the process alive.
    if (this.closed) throw this.error('CA_UNREACHABLE', req, 'the CA client is closed');
    const client = new Client(this.target, creds, options);
    this.channel = { client, rootKey };
    return client;
  }

  /** CA_ROOT_CA, re-read on every call; a bad one is CA_TLS. */
  private async rootPem(req: CaRequest): Promise<string | null> {
    try {
      return await readRootPem(this.opts.rootCa, 'CA_ROOT_CA');
    } catch (err) {
      throw this.error('CA_TLS', req, errorMessage(err));
    }
  }

  /** AUTH_TOKEN, re-read on every call; a bad one is CA_AUTH. */
  private async token(req: CaRequest): Promise<string | null> {
    try {
      return await readToken(this.opts.authToken);
    } catch (err) {
      throw this.error('CA_AUTH', req, errorMessage(err));
    }
  }

  private error(reason: Reason, req: CaRequest, why: string, cause?: unknown): ProxyError {
    return new ProxyError(reason, `certificate for ${req.identity} from CA ${this.opts.address}: ${why}`, { identity: req.identity.toString(), ca: this.opts.address }, cause);
  }
}
