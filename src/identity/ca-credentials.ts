import { open, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createSecureContext, rootCertificates, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { Socket } from 'node:net';
import { CallCredentials, ChannelCredentials, type experimental } from '@grpc/grpc-js';

/**
 * How the node's control-plane clients (the CA client and the xDS client, both to istiod)
 * authenticate the server and themselves. Both re-read the root and the token on every call
 * or (re)connect, so a rotated istiod root or a refreshed projected token is picked up without
 * a restart; each maps these errors onto its own reason codes.
 */

/** `https://host:port` or `host:port` → the gRPC target `host:port`. */
export function grpcTarget(address: string): string {
  return address.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

/** A root or token that cannot be used; the message names the setting and the value's problem. */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
}

/** CA_ROOT_CA / XDS_ROOT_CA (`key`): SYSTEM → null (the OS roots), inline PEM as is, else a PEM file's text. */
export async function readRootPem(value: string, key: string): Promise<string | null> {
  if (value === 'SYSTEM') return null;
  if (value.includes('-----BEGIN CERTIFICATE-----')) return value;
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new CredentialError(`${key} ${JSON.stringify(value)} is neither a readable PEM file nor inline PEM (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new CredentialError(`${key} file ${value} holds no PEM certificate`);
  return text;
}

/**
 * The longest bearer token sent. A Kubernetes service-account JWT is 1-3 KiB; a larger
 * value is a wrong AUTH_TOKEN (another file), and gRPC servers cap request headers: past
 * the cap a call fails obscurely (a stream reset, or no answer until the deadline).
 */
export const MAX_TOKEN_BYTES = 16 * 1024;

/**
 * AUTH_TOKEN: the file's contents when it exists; a missing path-like value (./…, /…)
 * means no token (outside Kubernetes), anything else is a literal token. Longer than
 * MAX_TOKEN_BYTES fails at once instead of at the server's deadline.
 */
export async function readToken(value: string): Promise<string | null> {
  if (value === '') return null;
  let token: string;
  try {
    token = (await readBounded(value, MAX_TOKEN_BYTES + 1)).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENAMETOOLONG' && code !== 'ENOTDIR') throw new CredentialError(`cannot read the AUTH_TOKEN file (${code ?? 'error'})`);
    if (/^(\.{0,2}\/)/.test(value)) return null;
    token = value;
  }
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
    throw new CredentialError(`the AUTH_TOKEN token is longer than ${MAX_TOKEN_BYTES} bytes and is not sent (a service-account token is about 1 KiB; does AUTH_TOKEN name the token file?)`);
  }
  return token;
}

/** Reads at most `limit` bytes of a file (a wrong AUTH_TOKEN path must not load a huge file). */
async function readBounded(path: string, limit: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(limit);
    let n = 0;
    while (n < limit) {
      const { bytesRead } = await fh.read(buf, n, limit - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    await fh.close();
  }
}

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
