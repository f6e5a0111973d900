import type { Server as NetServer, Socket } from 'node:net';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadCaService, IMPERSONATED_IDENTITY, type IstioCertificateRequest, type IstioCertificateResponse } from '../identity/ca-proto';
import type { SpiffeId } from '../identity/spiffe';
import { systemClock, type Clock } from '../util/clock';
import { formatListenAddr, type ListenAddr } from '../util/socket-addr';
import { CaDenied, authorizeIdentity, bearerToken, loadTokens, type Caller } from './authn';
import { CsrError, verifyCsr } from './csr-verify';
import { issueLeaf } from './issuer';
import { ROOT_CERT_FILE, issueServingCertificate, loadOrCreateRoot, type RootAuthority } from './root';

export interface DevCaOptions {
  /** CA_DIR: root-cert.pem + root-key.pem, created on first start. */
  readonly dir: string;
  /** CA_LISTEN_ADDR (port 0 picks a free port). */
  readonly listenAddr: ListenAddr;
  /** CA_TOKENS file, read at start. */
  readonly tokensPath: string | null;
  /** Callers given programmatically (tests, the local mesh), added to the file's. */
  readonly callers?: readonly Caller[];
  readonly trustedNodeAccounts: readonly string[];
  readonly localXdsPath: string | null;
  readonly trustDomain: string;
  /** CA_MAX_TTL: the longest validity granted. */
  readonly maxTtlMs: number;
  /** CA_SERVER_SANS: DNS names and IPs of the serving certificate. */
  readonly serverSans: readonly string[];
  readonly logger: Logger;
  readonly clock?: Clock;
  /**
   * More trust anchors appended to the root element of every response (istiod does this
   * during a root rotation: the last cert_chain element holds several roots).
   */
  readonly extraRootsPem?: readonly string[];
  /** Holds every issuance this long: a slow CA, for concurrency and priority tests. */
  readonly issueDelayMs?: number;
  /** More gRPC services on the same TLS port (the dev control plane's delta ADS). */
  readonly services?: readonly { readonly definition: ServiceDefinition; readonly implementation: UntypedServiceImplementation }[];
}

export interface DevCaStats {
  issued: number;
  inFlight: number;
  maxInFlight: number;
  /** Requested identities in arrival order. */
  arrivals: string[];
}

export interface DevCa {
  /** host:port the CA serves on (IPv6 in brackets). */
  readonly address: string;
  readonly rootPem: string;
  /** CA_ROOT_CA for clients. */
  readonly rootCertPath: string;
  stats(): DevCaStats;
  /** Graceful: finishes calls in flight. */
  close(): Promise<void>;
  destroy(): void;
}

/**
 * Starts the dev CA: Istio's CreateCertificate over TLS, token authentication from
 * CA_TOKENS, istiod-style impersonation checks, ECDSA P-256 leaves from the CA_DIR root.
 */
export async function startDevCa(o: DevCaOptions): Promise<DevCa> {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child({ scope: 'ca' });
  // The root and the serving certificate use wall-clock time (TLS to the CA is verified
  // against it); only leaf validity follows the injectable clock.
  const root = await loadOrCreateRoot(o.dir, o.trustDomain, systemClock.now());
  log.info({ dir: o.dir, serial: root.serialNumber, created: root.created }, root.created ? 'created dev root CA' : 'loaded dev root CA');
  const callers = new Map<string, Caller>();
  for (const c of [...(o.tokensPath ? await loadTokens(o.tokensPath) : []), ...(o.callers ?? [])]) callers.set(c.token, c);
  const serving = issueServingCertificate(root, o.serverSans, systemClock.now());
  const stats: DevCaStats = { issued: 0, inFlight: 0, maxInFlight: 0, arrivals: [] };
  const def = loadCaService();
  const server = new Server();
  server.addService(def.service, {
    CreateCertificate: (call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: sendUnaryData<IstioCertificateResponse>) => {
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      void handle(call, { o, root, callers, clock, log, stats }).then(
        (res) => cb(null, res),
        (err: unknown) => cb({ code: err instanceof CaDenied ? err.code : status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
      ).finally(() => stats.inFlight--);
    },
  });
  for (const svc of o.services ?? []) server.addService(svc.definition, svc.implementation);
  const creds = ServerCredentials.createSsl(null, [{ private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certPem) }], false);
  boundHandshakes(creds);
  const host = o.listenAddr.host ?? '[::]';
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${o.listenAddr.port}`, creds, (err, p) => (err ? reject(new Error(`dev CA cannot listen on ${formatListenAddr(o.listenAddr)}: ${err.message}`)) : resolve(p))));
  const address = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  log.info({ address, sans: o.serverSans, callers: callers.size, trustDomain: o.trustDomain, maxTtlMs: o.maxTtlMs }, 'dev CA listening');
  const accepted = trackAcceptedSockets(server);
  let closing: Promise<void> | null = null;
  return {
    address,
    rootPem: root.certPem,
    rootCertPath: join(o.dir, ROOT_CERT_FILE),
    stats: () => ({ ...stats, arrivals: [...stats.arrivals] }),
    close() {
      closing ??= new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => destroyAll(accepted));
      return closing;
    },
    destroy: () => {
      server.forceShutdown();
      destroyAll(accepted);
    },
  };
}

interface HandlerCtx {
  readonly o: DevCaOptions;
  readonly root: RootAuthority;
  readonly callers: ReadonlyMap<string, Caller>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: DevCaStats;
}

/** One CreateCertificate: authenticate → authorise the identity → check the CSR → issue. */
async function handle(call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, c: HandlerCtx): Promise<IstioCertificateResponse> {
  const req = call.request;
  const impersonated = req.metadata?.fields?.[IMPERSONATED_IDENTITY]?.stringValue ?? null;
  const token = bearerToken(call.metadata.get('authorization'));
  const extra = extraMetadata(call.metadata);
  let identity: SpiffeId | null = null;
  let who = 'unauthenticated caller';
  try {
    if (token === null) throw new CaDenied(status.UNAUTHENTICATED, 'missing bearer token: send metadata "authorization: Bearer <token>" with a token listed in CA_TOKENS');
    const caller = c.callers.get(token);
    if (!caller) throw new CaDenied(status.UNAUTHENTICATED, 'unknown bearer token: it is not listed in CA_TOKENS');
    who = `${caller.namespace}/${caller.serviceAccount}${caller.node ? `@${caller.node}` : ''}`;
    c.stats.arrivals.push(impersonated ?? `spiffe://${c.o.trustDomain}/ns/${caller.namespace}/sa/${caller.serviceAccount}`);
    identity = await authorizeIdentity({ caller, impersonated, trustDomain: c.o.trustDomain, trustedNodeAccounts: c.o.trustedNodeAccounts, localXdsPath: c.o.localXdsPath });
    let csr;
    try {
      csr = verifyCsr(req.csr);
    } catch (err) {
      if (err instanceof CsrError) throw new CaDenied(status.INVALID_ARGUMENT, `bad CSR for ${identity}: ${err.message}`);
      throw err;
    }
    if (csr.uris.length !== 1 || csr.uris[0] !== identity.toString()) throw new CaDenied(status.INVALID_ARGUMENT, `CSR URI SAN ${JSON.stringify(csr.uris)} does not match the authorised identity ${identity} (caller ${who})`);
    const requestedMs = Number(req.validity_duration) * 1000;
    const validityMs = Number.isFinite(requestedMs) && requestedMs > 0 ? Math.min(requestedMs, c.o.maxTtlMs) : c.o.maxTtlMs;
    if (c.o.issueDelayMs) await new Promise((r) => setTimeout(r, c.o.issueDelayMs));
    const leaf = issueLeaf(c.root, csr.spkiDer, identity, validityMs, c.clock.now());
    c.stats.issued++;
    c.log.info({ identity: identity.toString(), caller: who, impersonated: impersonated !== null, serial: leaf.serialNumber, notBefore: new Date(leaf.notBefore).toISOString(), notAfter: new Date(leaf.notAfter).toISOString(), ...extra }, 'issued certificate');
    return { cert_chain: [leaf.pem, c.root.certPem + (c.o.extraRootsPem ?? []).join('')] };
  } catch (err) {
    const code = err instanceof CaDenied ? status[err.code] : 'INTERNAL';
    c.log.warn({ caller: who, identity: identity?.toString() ?? impersonated, code, err: err instanceof Error ? err.message : String(err), ...extra }, 'refused certificate request');
    throw err;
  }
}

/** Metadata every gRPC call carries, or that holds the caller's secret. */
const STANDARD_METADATA = new Set(['authorization', 'content-type', 'user-agent', 'te', 'grpc-accept-encoding', 'grpc-encoding', 'grpc-timeout', 'accept-encoding']);

/** The request's other metadata (clusterid, a client's CA_HEADER_* extras), for the log line. */
function extraMetadata(md: Metadata): { metadata?: Record<string, string> } {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) if (!STANDARD_METADATA.has(k) && typeof v === 'string') out[k] = v;
  return Object.keys(out).length > 0 ? { metadata: out } : {};
}

/** How long a caller may take to finish the TLS handshake with the CA (Node's default is 120 s). */
const CA_HANDSHAKE_TIMEOUT_MS = 5000;

/**
 * grpc-js hands the credentials' constructor options to http2.createSecureServer but has
 * no option of its own for the TLS handshake timeout, and its forceShutdown() only
 * destroys established HTTP/2 sessions. A connection still in its handshake at shutdown
 * (or a client that stalls there on purpose) would otherwise hold the process open for
 * Node's default 120 s. A short handshake timeout bounds both.
 */
function boundHandshakes(creds: ServerCredentials): void {
  const internal = creds as unknown as { serverConstructorOptions?: Record<string, unknown> | null };
  if (internal.serverConstructorOptions) internal.serverConstructorOptions['handshakeTimeout'] = CA_HANDSHAKE_TIMEOUT_MS;
}

/**
 * The TCP connections the CA's listeners accepted, so shutdown can end every one of them.
 * grpc-js's shutdown only ends the HTTP/2 sessions it registered; a connection that arrives
 * while it is shutting down is never registered and would keep the process alive. grpc-js
 * does not expose its listeners, so this reads its internal map, and degrades to grpc-js's
 * own behaviour if that internal ever changes.
 */
function trackAcceptedSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  const listeners = (server as unknown as { http2Servers?: Map<NetServer, unknown> }).http2Servers;
  for (const l of listeners?.keys() ?? []) {
    l.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
  }
  return sockets;
}

function destroyAll(sockets: Set<Socket>): void {
  for (const s of sockets) s.destroy();
  sockets.clear();
}
