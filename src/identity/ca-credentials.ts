import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createSecureContext, rootCertificates, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { Socket } from 'node:net';
import { CallCredentials, ChannelCredentials, type experimental } from '@grpc/grpc-js';

/** The host part of a `host:port` gRPC target (`[v6]:port` unbracketed). */
export function targetHost(target: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(target);
  if (m) return m[1] as string;
  const colon = target.lastIndexOf(':');
  return colon > 0 && target.indexOf(':') === colon ? target.slice(0, colon) : target;
}

/**
 * The TLS name sent to the CA: ALT_CA_HOSTNAME, else the URL host unless it is an IP
 * address. RFC 6066 allows only host names as SNI, and Node warns (DEP0123) at every start
 * when given an IP; the certificate is still verified against the IP (its IP SANs).
 */
export function caServerName(host: string, altHostname: string | null): string | undefined {
  if (altHostname) return altHostname;
  return isIP(host) === 0 ? host : undefined;
}

/**
 * Channel credentials for the CA: TLS with ALPN h2 and the given roots, verifying the CA
 * certificate against ALT_CA_HOSTNAME or the URL host, with SNI only for host names.
 *
 * WHY our own credentials: grpc-js's SSL credentials always send the target host as SNI,
 * IP or not; this is the extension point grpc-js offers to shape the TLS connection.
 */
export class CaChannelCredentials extends ChannelCredentials {
  private readonly options: ConnectionOptions;

  constructor(rootPem: string | null, host: string, altHostname: string | null) {
    super();
    const verifyName = altHostname ?? host;
    const servername = caServerName(host, altHostname);
    this.options = {
      secureContext: createSecureContext({ ca: rootPem ?? [...rootCertificates] }),
      ALPNProtocols: ['h2'],
      host,
      ...(servername !== undefined ? { servername } : {}),
      rejectUnauthorized: true,
      checkServerIdentity: (_h: string, cert: PeerCertificate) => checkServerIdentity(verifyName, cert),
    };
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(_target: unknown, _options: unknown, callCredentials?: CallCredentials): experimental.SecureConnector {
    const options = this.options;
    const calls = callCredentials ?? CallCredentials.createEmpty();
    return {
      connect: (socket: Socket) =>
        new Promise((resolve, reject) => {
          const tlsSocket = tlsConnect({ ...options, socket }, () => {
            if (!tlsSocket.authorized) reject(tlsSocket.authorizationError ?? new Error('CA certificate not authorized'));
            else resolve({ socket: tlsSocket, secure: true });
          });
          tlsSocket.once('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => undefined,
    };
  }
}
