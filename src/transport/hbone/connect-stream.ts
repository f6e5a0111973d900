import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { ProxyError, errorMessage } from '../../errors';
import { formatSocketAddr } from '../../util/socket-addr';
import { buildConnectHeaders } from './headers';
import type { HboneTarget } from './types';

export interface OpenedConnect {
  readonly stream: ClientHttp2Stream;
  readonly responseHeaders: IncomingHttpHeaders;
}

/**
 * Keeps a late stream 'error' (after the CONNECT settled, before the caller attached its
 * own handler) from crashing the process; the caller's splice listens for errors itself.
 * Module-level so no closure is created per stream.
 */
export function ignoreStreamError(): void {}

/**
 * Sends one CONNECT on `session` and waits for the response HEADERS before any payload
 * (ztunnel's client does the same). 200 resolves with the stream; another status rejects
 * with HBONE_STATUS (status in details); RST_STREAM or session loss first → HBONE_RESET.
 */
export function openConnect(session: ClientHttp2Session, target: HboneTarget): Promise<OpenedConnect> {
  const peer = formatSocketAddr(target.nextHop);
  return new Promise<OpenedConnect>((resolve, reject) => {
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(buildConnectHeaders(target), { endStream: false });
    } catch (err) {
      reject(new ProxyError('HBONE_RESET', `cannot open a CONNECT stream to ${peer}: ${errorMessage(err)}`, { peer }, err));
      return;
    }
    stream.on('error', ignoreStreamError);
    const cleanup = (): void => {
      stream.removeListener('response', onResponse);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
    };
    const onResponse = (headers: IncomingHttpHeaders): void => {
      cleanup();
      const status = Number(headers[':status']);
      if (status === 200) {
        resolve({ stream, responseHeaders: headers });
        return;
      }
      stream.close(constants.NGHTTP2_CANCEL);
      reject(new ProxyError('HBONE_STATUS', `peer ${peer} answered CONNECT ${target.authority} with HTTP ${status}`, { peer, authority: target.authority, status }));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new ProxyError('HBONE_RESET', `peer ${peer} reset CONNECT ${target.authority} before answering: ${errorMessage(err)}`, { peer, rstCode: stream.rstCode }, err));
    };
    const onClose = (): void => {
      cleanup();
      reject(new ProxyError('HBONE_RESET', `peer ${peer} closed CONNECT ${target.authority} before answering (code ${String(stream.rstCode)})`, { peer, rstCode: stream.rstCode }));
    };
    stream.once('response', onResponse);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}
