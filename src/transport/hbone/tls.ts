import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { ProxyError, classifyError, errorMessage } from '../../errors';
import { SpiffeId } from '../../identity/spiffe';
import type { WorkloadCertificate } from '../../identity/types';
import { formatSocketAddr, type SocketAddr } from '../../util/socket-addr';
import { soleSpiffeIdentity, uriSans } from './san';

import { HBONE_CIPHERSUITES, HBONE_SECURE_CONTEXT_OPTIONS } from '../../identity/tls-profile';

export { HBONE_CIPHERSUITES, HBONE_SECURE_CONTEXT_OPTIONS };
const ALLOWED_SUITES = new Set(HBONE_CIPHERSUITES.split(':'));
export const HBONE_ALPN = ['h2'];

/**
 * Filled by the SAN check during the handshake. Node hands checkServerIdentity the parsed
 * peer certificate it already built; keeping the matched identity here avoids parsing
 * the certificate a second time with getPeerCertificate() (~80 µs per dial in profiles).
 */
export interface VerifiedPeer {
  identity: SpiffeId | null;
}

/**
 * Client options for one HBONE connection. No `servername`: Node sends SNI only when a
 * servername is given or the host is a name, and we always dial an IP, so no SNI leaves
 * (ztunnel disables SNI). No `session`: resumption is off. The chain is verified by
 * OpenSSL against the roots inside the certificate's context; the hostname check is
 * replaced by the SPIFFE SAN check.
 */
export function clientTlsOptions(cert: WorkloadCertificate, nextHop: SocketAddr, expected: readonly string[], verified: VerifiedPeer, localAddress?: string): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions & { localAddress?: string } = {
    host: nextHop.ip,
    port: nextHop.port,
    secureContext: cert.secureContext,
    ALPNProtocols: HBONE_ALPN,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, peer) => checkPeerIdentity(peer, expected, nextHop, verified),
  };
  if (localAddress) opts.localAddress = localAddress;
  return opts;
}

/**
 * Server verification after OpenSSL accepted the chain: the certificate's only SPIFFE URI
 * SAN (soleSpiffeIdentity) must be one of the expected identities; DNS names are ignored.
 * A different identity in an expected trust domain is TLS_PEER_IDENTITY, one in another
 * trust domain TLS_TRUST_DOMAIN. Returned (not thrown) because Node destroys the socket with it.
 */
export function checkPeerIdentity(peer: tls.PeerCertificate, expected: readonly string[], nextHop: SocketAddr, verified: VerifiedPeer): ProxyError | undefined {
  const who = `peer ${formatSocketAddr(nextHop)}`;
  let id: SpiffeId;
  try {
    id = soleSpiffeIdentity(peer, who);
  } catch (err) {
    return err instanceof ProxyError ? err : new ProxyError('TLS_SPIFFE_SAN', `${who} certificate SANs unreadable: ${errorMessage(err)}`);
  }
  const actual = id.toString();
  if (expected.includes(actual)) {
    verified.identity = id;
    return undefined;
  }
  const sameDomain = expected.some((e) => SpiffeId.tryParse(e)?.trustDomain === id.trustDomain);
  return new ProxyError(
    sameDomain ? 'TLS_PEER_IDENTITY' : 'TLS_TRUST_DOMAIN',
    `${who} presented identity ${actual}, expected one of [${expected.join(', ')}]`,
    { peer: formatSocketAddr(nextHop), expected: [...expected], actual },
  );
}

/** After the client handshake: enforce TLS 1.3 + allowed suite + ALPN h2, return the identity the SAN check matched. */
export function verifiedServerIdentity(sock: tls.TLSSocket, verified: VerifiedPeer, nextHop: SocketAddr): SpiffeId {
  assertTlsPolicy(sock, formatSocketAddr(nextHop));
  if (sock.alpnProtocol !== 'h2') {
    throw new ProxyError('H2_HANDSHAKE_FAILURE', `peer ${formatSocketAddr(nextHop)} did not negotiate ALPN h2 (got ${String(sock.alpnProtocol)})`);
  }
  // Set by checkPeerIdentity; null only if the handshake completed without the check.
  if (!verified.identity) throw new ProxyError('TLS_PEER_IDENTITY', `peer ${formatSocketAddr(nextHop)} was not verified against an expected SPIFFE identity`);
  return verified.identity;
}

function assertTlsPolicy(sock: tls.TLSSocket, peer: string): void {
  const proto = sock.getProtocol();
  const suite = sock.getCipher()?.standardName;
  if (proto !== 'TLSv1.3' || !suite || !ALLOWED_SUITES.has(suite)) {
    throw new ProxyError('TLS_FAILURE', `peer ${peer} negotiated ${String(proto)} ${String(suite)}; HBONE requires TLSv1.3 with ${HBONE_CIPHERSUITES}`, { protocol: proto, cipher: suite });
  }
}

/** Wraps an accepted raw TCP socket as the TLS server side with the listener's certificate. */
export function serverTlsSocket(raw: Socket, cert: WorkloadCertificate): tls.TLSSocket {
  // The TLSSocket inherits allowHalfOpen from the raw socket, and listeners are created
  // half-open for splicing. An HTTP/2 session only ends on the socket's 'close'; with
  // half-open on, a peer's FIN would leave the session (and its streams) open forever.
  // Half-close on HBONE lives in END_STREAM, never in the TCP connection.
  raw.allowHalfOpen = false;
  return new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: cert.secureContext,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: HBONE_ALPN,
  });
}

interface ServerHandle {
  verifyError?: () => Error | null;
}

/**
 * Completes a server-side handshake done on a bare TLSSocket (no tls.Server). Node's
 * tls.Server runs this step in its private `onServerSocketSecure`; without it the chain
 * verdict is never read and `secureConnecting` stays true (http2 would then wait forever
 * for 'secureConnect'). So we read OpenSSL's verdict from the handle ourselves (failing
 * closed if that internal is missing; each verify error keeps its own reason), then take
 * the client's identity: its only SPIFFE URI SAN, which must be in the server identity's
 * trust domain (TLS_SPIFFE_SAN / TLS_TRUST_DOMAIN otherwise).
 */
export function finishServerHandshake(sock: tls.TLSSocket, server: SpiffeId, peer: string): SpiffeId {
  const handle = (sock as unknown as { _handle?: ServerHandle })._handle;
  if (typeof handle?.verifyError !== 'function') {
    throw new ProxyError('TLS_FAILURE', `cannot read the certificate verification result for ${peer}; refusing`);
  }
  const verifyError = handle.verifyError();
  if (verifyError) {
    const code = (verifyError as { code?: string }).code ?? 'UNKNOWN';
    throw new ProxyError(classifyError(verifyError, 'tls'), `client ${peer} certificate rejected: ${code}: ${errorMessage(verifyError)}${describeCert(sock.getPeerCertificate())}`, { code });
  }
  assertTlsPolicy(sock, peer);
  if (sock.alpnProtocol !== 'h2') {
    throw new ProxyError('H2_HANDSHAKE_FAILURE', `client ${peer} did not negotiate ALPN h2 (got ${String(sock.alpnProtocol)})`);
  }
  const id = soleSpiffeIdentity(sock.getPeerCertificate(), `client ${peer}`);
  if (id.trustDomain !== server.trustDomain) {
    throw new ProxyError('TLS_TRUST_DOMAIN', `client ${peer} identity ${id.toString()} is not in trust domain ${server.trustDomain}`, { actual: id.toString(), trustDomain: server.trustDomain });
  }
  (sock as unknown as { secureConnecting: boolean }).secureConnecting = false;
  return id;
}

/** ` (SANs …, valid … to …)` for a rejected certificate's log line; empty when there is none. */
function describeCert(cert: tls.PeerCertificate | undefined): string {
  if (!cert?.valid_from) return '';
  return ` (certificate SANs [${uriSans(cert).join(', ')}], valid ${cert.valid_from} to ${cert.valid_to})`;
}

/** Maps a TLS-phase error (either side) to a typed ProxyError, keeping an existing one. */
export function tlsError(err: unknown, peer: string, side: 'client' | 'server'): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  const reason = classifyError(err, 'tls');
  if (reason === 'TLS_NO_CLIENT_CERT') {
    return new ProxyError(reason, `${side === 'server' ? `client ${peer} sent` : 'we sent'} no client certificate`, { code }, err);
  }
  const whose = side === 'client' && reason !== 'TLS_FAILURE' ? ` (server certificate of ${peer} rejected)` : '';
  return new ProxyError(reason, `TLS handshake with ${peer} failed: ${code ? code + ': ' : ''}${errorMessage(err)}${whose}`, { code }, err);
}
