/**
 * The closed set of failure reasons. The same string is the `reason` label on metrics,
 * the `reason` field of access and diagnostic logs, and the key into the HTTP status map,
 * so a user can grep one code across everything.
 */
export const REASONS = {
  DENY: { flag: 'DENY', status: 401, hint: 'an AuthorizationPolicy denied the connection; see the policy named in the log' },
  DENY_LATE: { flag: 'DENY', status: 401, hint: 'a policy change now denies this live connection, so it was closed' },
  CONNECT: { flag: 'CONNECT', status: 503, hint: 'the destination refused or reset the TCP connect; is the app listening on the target port?' },
  CONNECT_TIMEOUT: { flag: 'CONNECT', status: 503, hint: 'the destination did not answer the TCP connect in time' },
  NETWORK_POLICY: { flag: 'NETWORK_POLICY', status: 503, hint: 'maybe a NetworkPolicy is blocking HBONE port 15008, or the peer node proxy is down' },
  PEER_UNREACHABLE: { flag: 'CONNECT', status: 503, hint: 'the peer node proxy refused the connection on 15008 (not running?)' },
  TLS_FAILURE: { flag: 'TLS_FAILURE', status: 0, hint: 'the mTLS handshake failed; check both sides share the mesh root' },
  TLS_PEER_IDENTITY: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer certificate names another identity than the expected one(s) for this destination' },
  TLS_TRUST_DOMAIN: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer certificate\'s identity is in another trust domain than expected' },
  TLS_NO_CLIENT_CERT: { flag: 'TLS_FAILURE', status: 0, hint: 'the client sent no certificate; HBONE requires mTLS' },
  TLS_SPIFFE_SAN: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer certificate must carry exactly one well-formed SPIFFE URI SAN; it has none, several or a malformed one' },
  TLS_CERT_EXPIRED: { flag: 'TLS_FAILURE', status: 0, hint: 'a certificate in the peer\'s chain has expired (notAfter passed); check its rotation and the clocks' },
  TLS_CERT_NOT_YET_VALID: { flag: 'TLS_FAILURE', status: 0, hint: 'a certificate in the peer\'s chain is not valid yet (notBefore in the future); check the clocks of the peer, this node and the CA' },
  TLS_UNKNOWN_ISSUER: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer\'s chain does not reach the mesh root: an intermediate is missing (truncated chain) or another CA issued it' },
  TLS_UNTRUSTED: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer\'s chain is not trusted: self-signed, a bad signature, or an issuer that may not sign certificates' },
  H2_HANDSHAKE_FAILURE: { flag: 'H2_HANDSHAKE_FAILURE', status: 0, hint: 'the HTTP/2 session with the peer failed (ALPN must be h2)' },
  HBONE_STATUS: { flag: 'CONNECT', status: 503, hint: 'the peer proxy answered the CONNECT with a non-200 status' },
  HBONE_RESET: { flag: 'CONNECT', status: 503, hint: 'the peer reset the HBONE stream' },
  IDENTITY_ERROR: { flag: 'IDENTITY_ERROR', status: 503, hint: 'no valid certificate for this identity; check the CA (CA_ADDRESS) and its logs' },
  UNKNOWN_SOURCE: { flag: 'CONNECT', status: 0, hint: 'the source IP is not a workload on this node; the connection is refused, never attributed to someone else' },
  SELF_CALL: { flag: 'CONNECT', status: 0, hint: 'the destination is one of the proxy\'s own ports (a loop)' },
  NO_HEALTHY_UPSTREAM: { flag: 'CONNECT', status: 503, hint: 'the service has no healthy endpoint for this port' },
  BAD_REQUEST: { flag: 'CONNECT', status: 400, hint: 'malformed HBONE CONNECT request' },
  UNKNOWN_DESTINATION: { flag: 'CONNECT', status: 400, hint: 'the CONNECT authority is not a workload on this node (nor one it waypoints for)' },
  ILLEGAL_PORT: { flag: 'CONNECT', status: 503, hint: 'the target port is one of the proxy\'s own ports' },
  UNKNOWN_WAYPOINT: { flag: 'CONNECT', status: 503, hint: 'the destination names a waypoint that is not in the state (no such service or workload address)' },
  CROSS_NETWORK: { flag: 'CONNECT', status: 503, hint: 'the destination is on another network; double-HBONE through an east-west gateway is not supported' },
  LOCAL_WORKLOAD_UNKNOWN: { flag: 'CONNECT', status: 503, hint: 'no local workload is known for the address the connection arrived on (state not loaded yet?)' },
  UNKNOWN_SERVICE: { flag: 'CONNECT', status: 503, hint: 'the CONNECT authority names a service or service port this workload does not serve' },
  HANDSHAKE_TIMEOUT: { flag: 'TLS_FAILURE', status: 0, hint: 'the peer did not finish the TLS handshake in time' },
  HEADERS_TIMEOUT: { flag: 'CONNECT', status: 0, hint: 'the peer opened a session but sent no CONNECT in time' },
  IDLE_TIMEOUT: { flag: '-', status: 0, hint: 'no bytes moved for the idle timeout' },
  STREAM_LIMIT: { flag: 'CONNECT', status: 503, hint: 'the peer exceeded a per-connection limit: concurrent streams, pending handshakes, control-frame rate or bytes parked before the CONNECT was answered' },
  SOCKS_UNKNOWN_HOST: { flag: 'CONNECT', status: 0, hint: 'the SOCKS5 domain name is not the hostname of a known service (names resolve from the mesh state, never DNS)' },
  SOCKS_PROTOCOL: { flag: 'CONNECT', status: 0, hint: 'malformed or unsupported SOCKS5 request (only no-auth CONNECT is served)' },
  RESET: { flag: '-', status: 0, hint: 'a side reset the connection; the reset was carried to the other side' },
  TUNNEL_LOST: { flag: 'CONNECT', status: 0, hint: 'the HBONE connection under this tunnel was lost (peer stopped answering PINGs, closed or reset the connection, or force-closed it at its drain deadline); the application connection was reset, bytes still held for it were discarded' },
  DRAINED: { flag: 'CONNECT', status: 503, hint: 'the proxy is shutting down and force-closed the connection at the drain deadline' },
  CA_UNREACHABLE: { flag: 'IDENTITY_ERROR', status: 0, hint: 'the CA did not answer; check CA_ADDRESS and that the CA runs' },
  CA_TLS: { flag: 'IDENTITY_ERROR', status: 0, hint: 'TLS to the CA failed; check CA_ROOT_CA matches the CA serving certificate' },
  CA_AUTH: { flag: 'IDENTITY_ERROR', status: 0, hint: 'the CA refused our token (AUTH_TOKEN) or impersonation' },
  CA_REJECTED: { flag: 'IDENTITY_ERROR', status: 0, hint: 'the CA rejected the certificate request' },
  CA_BAD_RESPONSE: { flag: 'IDENTITY_ERROR', status: 0, hint: 'the CA returned a chain that is malformed or names another identity' },
  CERT_EXPIRED: { flag: 'IDENTITY_ERROR', status: 0, hint: 'the certificate expired and no replacement could be fetched' },
  XDS_UNREACHABLE: { flag: '-', status: 0, hint: 'the xDS control plane did not answer (DNS or connect failure); check XDS_ADDRESS and that istiod runs' },
  XDS_TLS: { flag: '-', status: 0, hint: 'TLS to the xDS control plane failed; check XDS_ROOT_CA (and ALT_XDS_HOSTNAME) match its serving certificate' },
  XDS_AUTH: { flag: '-', status: 0, hint: 'the xDS control plane refused our token; check AUTH_TOKEN (audience istio-ca) and that POD_NAMESPACE matches it' },
  XDS_REJECTED: { flag: '-', status: 0, hint: 'an xDS resource was rejected (NACK); the others were applied and the last good version of it stays' },
  JWT_INVALID: { flag: '-', status: 401, hint: 'the request carried a JWT that a RequestAuthentication jwtRule refused (expired, wrong issuer or audience, bad signature, unknown key); see jwt.failure in the access log and /debug/explain' },
  JWKS_FETCH: { flag: '-', status: 0, hint: 'fetching a jwtRule\'s JWKS (jwksUri or OpenID discovery) failed; the last good keys stay, without any its tokens are refused; check the URI, DNS and TLS' },
  CONFIG_INVALID: { flag: '-', status: 0, hint: 'the config was rejected; the last good state stays in force' },
  DNS_MALFORMED: { flag: '-', status: 0, hint: 'a DNS message that is not a standard query with one question (or is larger than 4096 bytes) was answered FORMERR/NOTIMP or dropped' },
  DNS_UNKNOWN_CLIENT: { flag: '-', status: 0, hint: 'a DNS query arrived on a listener (or from a source address) of no known workload: answered SERVFAIL, since the answer depends on the client namespace' },
  DNS_OVERLOAD: { flag: '-', status: 0, hint: 'too many DNS queries were waiting for the upstream nameservers; this one got SERVFAIL at once (a query flood, or slow upstreams)' },
  DNS_UPSTREAM_TIMEOUT: { flag: '-', status: 0, hint: 'no upstream nameserver answered in DNS_FORWARD_TIMEOUT; check the nameservers of DNS_RESOLV_CONF / DNS_UPSTREAMS' },
  DNS_UPSTREAM_UNREACHABLE: { flag: '-', status: 0, hint: 'the upstream nameservers refused or could not be reached (ICMP unreachable, TCP reset, none configured)' },
  INTERNAL: { flag: 'CONNECT', status: 503, hint: 'an unexpected internal error; please report it with the log line' },
} as const;

export type Reason = keyof typeof REASONS;
/** Istio's `response_flags` label values. */
export type ResponseFlag = (typeof REASONS)[Reason]['flag'];

/** Every failure the data plane reports carries one typed reason plus context for the log. */
export class ProxyError extends Error {
  readonly reason: Reason;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(reason: Reason, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ProxyError';
    this.reason = reason;
    this.details = details;
  }
  get hint(): string {
    return REASONS[this.reason].hint;
  }
}

/**
 * Where a foreign error was raised. One errno means different things in different phases:
 * ECONNREFUSED from an app is CONNECT, from a peer's HBONE port PEER_UNREACHABLE; an
 * ECONNRESET during the copy is a reset to carry, not a failure to connect; anything that
 * ends a TLS handshake is a TLS reason.
 */
export type ErrorPhase = 'connect' | 'peer-connect' | 'tls' | 'copy';

/** Codes that mean "the other side reset", as Node reports them for sockets and HTTP/2 streams. */
const RESET_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_HTTP2_STREAM_ERROR']);

/**
 * The one place foreign errors become reasons: walks `.cause` looking for a ProxyError,
 * then maps the Node error code for the phase it was raised in. Everything else is INTERNAL
 * (or, for a phase with one natural failure, that failure).
 */
export function classifyError(err: unknown, phase: ErrorPhase = 'connect'): Reason {
  let e: unknown = err;
  for (let depth = 0; e && depth < 8; depth++) {
    if (e instanceof ProxyError) return e.reason;
    e = (e as { cause?: unknown }).cause;
  }
  const raw = (err as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' ? raw : '';
  switch (phase) {
    case 'peer-connect':
      // Refused/unreachable: no proxy listening; a timeout: something drops port 15008.
      return code === 'ETIMEDOUT' ? 'NETWORK_POLICY' : 'PEER_UNREACHABLE';
    case 'tls': {
      const r = reasonForCode(code);
      return REASONS[r].flag === 'TLS_FAILURE' ? r : 'TLS_FAILURE';
    }
    case 'copy':
      return RESET_CODES.has(code) ? 'RESET' : reasonForCode(code);
    case 'connect':
      return reasonForCode(code);
  }
}

/** Node error codes that mean the same in every phase. */
function reasonForCode(code: string): Reason {
  switch (code) {
    case 'ECONNREFUSED':
      return 'CONNECT';
    case 'ETIMEDOUT':
      return 'CONNECT_TIMEOUT';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'RESET';
    case 'ERR_HTTP2_STREAM_ERROR':
      return 'HBONE_RESET';
    // OpenSSL's X509 verify results (Node's error code for a rejected peer chain, on the
    // client socket's 'error' and the server handle's verifyError()).
    case 'CERT_HAS_EXPIRED':
      return 'TLS_CERT_EXPIRED';
    case 'CERT_NOT_YET_VALID':
      return 'TLS_CERT_NOT_YET_VALID';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
      return 'TLS_UNKNOWN_ISSUER';
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_UNTRUSTED':
    case 'CERT_REJECTED':
    case 'INVALID_CA':
    case 'INVALID_PURPOSE':
    case 'PATH_LENGTH_EXCEEDED':
    case 'CERT_CHAIN_TOO_LONG':
      return 'TLS_UNTRUSTED';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'TLS_NO_CLIENT_CERT';
    default:
      // Handshake failures without a verify result (wrong version, alerts from the peer).
      return code.startsWith('ERR_SSL_') ? 'TLS_FAILURE' : 'INTERNAL';
  }
}

/** A message safe to log: never includes key material (we never put any in errors, this is a guard). */
export function errorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[redacted private key]');
}
