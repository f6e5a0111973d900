import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import { ProxyError, REASONS, classifyError, errorMessage } from '../../errors';
import type { SpiffeId } from '../../identity/spiffe';
import type { WorkloadCertificate } from '../../identity/types';
import type { Clock } from '../../util/clock';
import { formatSocketAddr } from '../../util/socket-addr';
import { prepareDial, type SocketOptions } from '../socket-opts';
import type { H2Tuning } from './options';
import { clientTlsOptions, tlsError, verifiedServerIdentity, type VerifiedPeer } from './tls';
import type { HboneTarget } from './types';

export interface DialOptions {
  readonly clock: Clock;
  /** TCP connect timeout (CONNECT_TIMEOUT); expiry → NETWORK_POLICY like ztunnel. */
  readonly connectTimeout: number;
  /** Budget for TLS + HTTP/2 SETTINGS after the TCP connect. */
  readonly handshakeTimeout: number;
  readonly h2: H2Tuning;
  /** Client SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB in ztunnel). */
  readonly maxHeaderListSize: number;
  readonly socket: SocketOptions;
  /** Called when SO_MARK could not be set (logged by the pool). */
  readonly onSocketOptionError?: (err: Error) => void;
}

/** A handshaken HBONE connection: TLS verified, SETTINGS received. */
export interface DialedSession {
  readonly session: http2.ClientHttp2Session;
  readonly peerIdentity: SpiffeId;
}

/**
 * Dials one HBONE connection in three phases, each with its own failure reason:
 * TCP (PEER_UNREACHABLE / NETWORK_POLICY on timeout), TLS (the TLS_* reasons of tls.ts:
 * chain verdict, SPIFFE SAN, expected identity) and HTTP/2 (H2_HANDSHAKE_FAILURE until the peer's SETTINGS arrive,
 * so `remoteSettings.maxConcurrentStreams` is known before the first checkout).
 */
export async function dialHbone(target: HboneTarget, cert: WorkloadCertificate, o: DialOptions): Promise<DialedSession> {
  const verified: VerifiedPeer = { identity: null };
  const sock = await connectTls(target, cert, o, verified);
  let peerIdentity: SpiffeId;
  try {
    peerIdentity = verifiedServerIdentity(sock, verified, target.nextHop);
  } catch (err) {
    sock.destroy();
    throw err;
  }
  const session = await handshakeH2(sock, target, o);
  return { session, peerIdentity };
}

function connectTls(target: HboneTarget, cert: WorkloadCertificate, o: DialOptions, verified: VerifiedPeer): Promise<tls.TLSSocket> {
  const peer = formatSocketAddr(target.nextHop);
  return new Promise((resolve, reject) => {
    let sock: tls.TLSSocket;
    if (target.createSocket) {
      const raw = target.createSocket(target.nextHop.family, target.localAddress, false);
      raw.connect({ host: target.nextHop.ip, port: target.nextHop.port });
      if (o.socket.keepalive) raw.setKeepAlive(true, o.socket.keepaliveTime);
      sock = tls.connect({ ...clientTlsOptions(cert, target.nextHop, target.expectedIdentities, verified), socket: raw });
    } else {
      const dial = prepareDial(target.nextHop.family, target.localAddress, o.socket);
      sock = tls.connect(clientTlsOptions(cert, target.nextHop, target.expectedIdentities, verified, dial.localAddress));
      dial.attach(sock, (err) => o.onSocketOptionError?.(err));
    }
    let tcpUp = false;
    let timer = o.clock.setTimeout(() => fail(tcpTimeout()), o.connectTimeout);
    timer.unref?.();
    const tcpTimeout = (): ProxyError =>
      new ProxyError('NETWORK_POLICY', `connect to ${peer} timed out: maybe a NetworkPolicy is blocking HBONE port 15008`, { peer, timeoutMs: o.connectTimeout });
    const fail = (err: ProxyError): void => {
      cleanup();
      sock.destroy();
      reject(err);
    };
    const cleanup = (): void => {
      o.clock.clearTimeout(timer);
      sock.removeListener('connect', onConnect);
      sock.removeListener('secureConnect', onSecure);
      sock.removeListener('error', onError);
      sock.removeListener('close', onClose);
    };
    const onConnect = (): void => {
      tcpUp = true;
      o.clock.clearTimeout(timer);
      timer = o.clock.setTimeout(
        () => fail(new ProxyError('TLS_FAILURE', `TLS handshake with ${peer} timed out after ${o.handshakeTimeout}ms`, { peer })),
        o.handshakeTimeout,
      );
      timer.unref?.();
    };
    const onSecure = (): void => {
      cleanup();
      sock.on('error', swallowUntilOwned);
      resolve(sock);
    };
    const onError = (err: Error): void => fail(tcpUp ? tlsError(err, peer, 'client') : tcpError(err, peer));
    const onClose = (): void => fail(new ProxyError(tcpUp ? 'TLS_FAILURE' : 'PEER_UNREACHABLE', `connection to ${peer} closed during the ${tcpUp ? 'TLS handshake' : 'TCP connect'}`, { peer }));
    sock.once('connect', onConnect);
    sock.once('secureConnect', onSecure);
    sock.once('error', onError);
    sock.once('close', onClose);
  });
}

/** The http2 session takes over error reporting; this only prevents an unhandled 'error' in the gap. */
function swallowUntilOwned(): void {}

function tcpError(err: Error, peer: string): ProxyError {
  const code = (err as { code?: string }).code ?? '';
  const reason = classifyError(err, 'peer-connect');
  if (reason === 'NETWORK_POLICY') {
    return new ProxyError(reason, `connect to ${peer} timed out: maybe a NetworkPolicy is blocking HBONE port 15008`, { peer, code }, err);
  }
  const detail = code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? `${code}; is the peer node proxy running on 15008?` : `${code ? code + ': ' : ''}${errorMessage(err)}`;
  return new ProxyError(reason, `connect to ${peer} failed: ${detail}`, { peer, code }, err);
}

function handshakeH2(sock: tls.TLSSocket, target: HboneTarget, o: DialOptions): Promise<http2.ClientHttp2Session> {
  const peer = formatSocketAddr(target.nextHop);
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${peer}`, {
      createConnection: () => sock,
      settings: {
        initialWindowSize: o.h2.streamWindow,
        maxFrameSize: o.h2.frameSize,
        maxHeaderListSize: o.maxHeaderListSize,
        enablePush: false,
      },
      maxSessionMemory: o.h2.maxSessionMemoryMb,
    });
    const timer = o.clock.setTimeout(() => fail(`no HTTP/2 SETTINGS from ${peer} within ${o.handshakeTimeout}ms`), o.handshakeTimeout);
    timer.unref?.();
    const cleanup = (): void => {
      o.clock.clearTimeout(timer);
      session.removeListener('remoteSettings', onSettings);
      session.removeListener('error', onError);
      session.removeListener('close', onClose);
    };
    const fail = (why: string, cause?: unknown): void => {
      cleanup();
      session.destroy();
      sock.destroy();
      reject(new ProxyError('H2_HANDSHAKE_FAILURE', why, { peer }, cause));
    };
    const onSettings = (): void => {
      cleanup();
      try {
        session.setLocalWindowSize(o.h2.connectionWindow);
      } catch (err) {
        fail(`cannot set the connection window on ${peer}: ${errorMessage(err)}`, err);
        return;
      }
      resolve(session);
    };
    // A peer that rejects our client certificate closes after its side of the TLS 1.3
    // handshake; we notice it here, before SETTINGS, so the message says so.
    const onError = (err: Error): void => {
      if (REASONS[classifyError(err)].flag === 'TLS_FAILURE') {
        cleanup();
        session.destroy();
        reject(tlsError(err, peer, 'client'));
        return;
      }
      fail(`HTTP/2 handshake with ${peer} failed: ${errorMessage(err)} (did the peer reject our certificate?)`, err);
    };
    const onClose = (): void => fail(`peer ${peer} closed the connection before HTTP/2 SETTINGS (did it reject our certificate?)`);
    session.once('remoteSettings', onSettings);
    session.once('error', onError);
    session.once('close', onClose);
  });
}
