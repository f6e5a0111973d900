import * as http from 'node:http';
import { errorMessage } from '../errors';
import { applyHeaderModifier } from './l7/filters';
import type { L7Decision } from './l7/decide';
import type { L7Peer, L7Request } from './l7/request';
import { forwardHeaders } from './forward-headers';
import type { ConnInfo } from './request-context';
import { requestId } from './request-context';
import type { RequestRecorder } from './request-record';
import type { StreamSocket } from './stream-socket';
import type { Upstreams } from './upstream';
import { applyAuthnHeaders, authnFailureBody, type ApplicableAuthn } from './authn/request-authn';
import type { AuthnResult } from './authn/types';

/** What an upgrade needs from the HTTP proxy (the same decision and telemetry as any request). */
export interface UpgradeHost {
  view(req: http.IncomingMessage, info: ConnInfo): { request: L7Request; peer: L7Peer };
  decide(request: L7Request, peer: L7Peer, info: ConnInfo): L7Decision;
  authenticate(request: L7Request, info: ConnInfo): { applies: ApplicableAuthn | null; result: AuthnResult | Promise<AuthnResult> | null };
  startSpan(rec: ReturnType<RequestRecorder['begin']>, target: string, request: L7Request, info: ConnInfo): void;
  readonly recorder: RequestRecorder;
  readonly upstreams: Upstreams;
}

/**
 * HTTP/1.1 upgrades (WebSocket and others): the same L7 decision as any request, then the
 * request goes to the endpoint on its own tunnel through node:http; once the endpoint
 * answers 101, its response head is relayed and both tunnels are joined byte for byte.
 * Any other answer is relayed as a normal response. One record when both sides closed.
 */
export function handleUpgrade(proxy: UpgradeHost, req: http.IncomingMessage, socket: StreamSocket, head: Buffer, info: ConnInfo): void {
  const { request, peer } = proxy.view(req, info);
  // A token is verified as for any request: a refused one is a 401, a verified one is the request principal.
  const { applies, result } = proxy.authenticate(request, info);
  if (result instanceof Promise) {
    result.then(
      (r) => upgrade(proxy, req, socket, head, info, request, peer, applies, r),
      () => socket.destroy(),
    );
  } else upgrade(proxy, req, socket, head, info, request, peer, applies, result);
}

function upgrade(proxy: UpgradeHost, req: http.IncomingMessage, socket: StreamSocket, head: Buffer, info: ConnInfo, request: L7Request, peer: L7Peer, applies: ApplicableAuthn | null, authn: AuthnResult | null): void {
  const rec = proxy.recorder.begin(info, request, false, `HTTP/${req.httpVersion}`);
  rec.requestId = requestId(request.headers['x-request-id']);
  proxy.startSpan(rec, req.url ?? '/', request, info);
  rec.authn = authn;
  if (authn?.kind === 'fail') {
    const body = authnFailureBody(authn);
    rec.status = 401;
    rec.details = `jwt_authn_access_denied{${authn.failure}}`;
    socket.once('close', () => rec.finish(null));
    socket.end(`HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm="http://${request.host}${request.path}", error="invalid_token"\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  const dec = proxy.decide(authn?.kind === 'ok' ? { ...request, auth: authn.identity } : request, peer, info);
  rec.decision = dec;
  const startRead = socket.bytesRead;
  const startWritten = socket.bytesWritten;
  socket.once('close', () => {
    rec.reqCounter.bytes = socket.bytesRead - startRead;
    rec.resCounter.bytes = socket.bytesWritten - startWritten;
    rec.finish(null);
  });
  socket.on('error', () => socket.destroy());
  if (dec.kind !== 'forward' || !dec.endpoint) {
    const status = dec.kind === 'deny' ? 403 : dec.kind === 'local' || dec.kind === 'redirect' ? dec.status : 500;
    const body = dec.kind === 'deny' ? 'RBAC: access denied' : '';
    rec.status = status;
    rec.flags = dec.kind === 'local' ? dec.flags : '-';
    const loc = dec.kind === 'redirect' ? `location: ${dec.location}\r\n` : '';
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n${loc}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  const ep = dec.endpoint;
  rec.endpoint = ep;
  const headers = forwardHeaders(req.headers, rec.requestId);
  if (applies && authn) applyAuthnHeaders(headers, applies, authn);
  for (const m of dec.requestHeaders) applyHeaderModifier(headers, m);
  headers['host'] = dec.host;
  // The endpoint's request is a child of this span, as for any request.
  if (rec.span) Object.assign(headers, rec.span.upstream);
  headers['connection'] = 'Upgrade';
  headers['upgrade'] = String(req.headers['upgrade'] ?? '');
  proxy.upstreams.connect(ep).then(
    (conn) => {
      rec.upstreamIdentity = conn.peerIdentity;
      if (socket.destroyed) {
        conn.socket.destroy();
        return;
      }
      socket.once('close', () => conn.socket.destroy());
      const up = http.request({ createConnection: () => conn.socket, method: req.method, path: dec.path, headers, setHost: false });
      up.on('upgrade', (ures, usocket, uhead) => {
        rec.status = ures.statusCode ?? 101;
        rec.responded = true;
        socket.write(`HTTP/1.1 ${rec.status} ${ures.statusMessage ?? ''}\r\n${rawHead(ures.rawHeaders)}\r\n`);
        if (uhead.length > 0) socket.write(uhead);
        if (head.length > 0) usocket.write(head);
        usocket.on('error', () => socket.destroy());
        usocket.once('close', () => socket.destroy());
        usocket.pipe(socket);
        socket.pipe(usocket);
      });
      up.on('response', (ures) => {
        rec.status = ures.statusCode ?? 502;
        rec.responded = true;
        socket.write(`HTTP/1.1 ${rec.status} ${ures.statusMessage ?? ''}\r\n${rawHead(ures.rawHeaders, /^(connection|transfer-encoding|content-length)$/i)}connection: close\r\n\r\n`);
        ures.pipe(socket);
      });
      up.on('error', (err) => {
        rec.error = errorMessage(err);
        if (!rec.responded) {
          rec.status = 503;
          rec.flags = 'UF';
          socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        } else socket.destroy();
      });
      up.end();
    },
    (err: Error) => {
      rec.error = errorMessage(err);
      rec.status = 503;
      rec.flags = 'UF';
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    },
  );
}

/** Header lines from rawHeaders (name, value pairs), leaving out names that `skip` matches. */
function rawHead(raw: string[], skip?: RegExp): string {
  let s = '';
  for (let i = 0; i + 1 < raw.length; i += 2) if (!skip?.test(raw[i] as string)) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return s;
}
