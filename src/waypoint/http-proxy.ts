import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { classifyError, errorMessage } from '../errors';
import type { SpiffeId } from '../identity/spiffe';
import type { StateView } from '../state/view';
import type { RequestMetrics } from '../telemetry/request-metrics';
import { formatSocketAddr } from '../util/socket-addr';
import { declaredProtocol } from './config/service-ports';
import type { L7Config } from './config/types';
import { decideRequest, type Endpoint, type L7Decision } from './l7/decide';
import { applyHeaderModifier, type HeaderBag } from './l7/filters';
import { flattenHeaders, splitPathQuery, type L7Peer, type L7Request } from './l7/request';
import type { WaypointName } from './l7/route-select';
import { GrpcFrameCounter, grpcStatusForHttp } from './grpc-frames';
import { requestId, type ConnInfo } from './request-context';
import { HOP, forwardHeaders } from './forward-headers';
import { forwardBody, hasNoBody, trailerFields, type DownReq, type DownRes } from './body';
import { RequestRecorder } from './request-record';
import type { StreamSocket } from './stream-socket';
import type { Upstreams } from './upstream';
import { applyAuthnHeaders, authnFailureBody, type ApplicableAuthn, type RequestAuth } from './authn/request-authn';
import type { AuthnResult } from './authn/types';
import { httpSpanStart } from '../telemetry/tracing/http-span';
import type { RequestTracer } from '../telemetry/tracing/request-tracer';
import { handleUpgrade } from './upgrade';
import type { RequestMirror } from './mirror';
import { beginTraffic } from './traffic/begin';
import { virtualServiceFor } from './traffic/plan';
import type { TrafficManager } from './traffic/manager';
import type { TrafficRun } from './traffic/run';

export interface HttpProxyDeps {
  readonly state: StateView;
  readonly config: () => L7Config;
  readonly waypoint: WaypointName;
  readonly network: string;
  readonly clusterDomain: string;
  readonly upstreams: Upstreams;
  readonly mirror: RequestMirror;
  readonly metrics: RequestMetrics;
  readonly logger: Logger;
  readonly random: () => number;
  /** Request authentication (RequestAuthentication / JWT); absent = none. */
  readonly authn?: RequestAuth;
  /** The request tracer once tracing started; absent or null = tracing off. */
  readonly tracer?: () => RequestTracer | null;
  /** VirtualService / DestinationRule / LocalRateLimit handling; absent = none. */
  readonly traffic?: TrafficManager;
}

type Run = ReturnType<RequestRecorder['begin']>;
type Forward = Extract<L7Decision, { kind: 'forward' }>;
/** No RequestAuthentication applies: one shared answer, nothing allocated per request. */
const NO_AUTHN = { applies: null, result: null } as const;


/**
 * The waypoint's HTTP data path. Tunnels classified as HTTP/1.1 go to one node:http server
 * and h2c tunnels to one node:http2 server (each tunnel is fed in with
 * `emit('connection')`), so parsing, keep-alive, chunking, flow control and trailers are
 * Node's. Each request: L7 decision (authorization, route, filters, backend, endpoint),
 * then forwarded to the endpoint over the waypoint's own HBONE: as HTTP/2 (one session
 * per endpoint) when the backend's Service port declares http2/grpc or the request is
 * gRPC, as HTTP/1.1 (pooled) when it declares http, else in the protocol the client spoke.
 * Request and response bodies stream with their trailers in both directions (HTTP/1.1
 * chunked trailers ↔ HTTP/2 trailing HEADERS), and one metrics record + access-log line
 * is written at the end.
 */
export class HttpProxy {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private readonly h1Conn = new WeakMap<object, ConnInfo>();
  private readonly h2Conn = new WeakMap<http2.Http2Session, ConnInfo>();
  private attaching: ConnInfo | null = null;
  readonly recorder: RequestRecorder;

  constructor(private readonly d: HttpProxyDeps) {
    this.recorder = new RequestRecorder(d.metrics, d.logger);
    this.h1 = http.createServer({ keepAlive: true }, (req, res) => this.onRequest(req, res, this.h1Conn.get(req.socket) ?? null));
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: StreamSocket, head: Buffer) => {
      const info = this.h1Conn.get(socket);
      if (info) handleUpgrade(this, req, socket, head, info);
      else socket.destroy();
    });
    this.h1.on('clientError', (_err, socket) => socket.destroy());
    this.h2 = http2.createServer({ settings: { enableConnectProtocol: false } }, (req, res) => this.onRequest(req, res, this.h2Conn.get(req.stream.session as http2.Http2Session) ?? null));
    // 'session' fires synchronously inside emit('connection'): that is where the tunnel's context is attached.
    this.h2.on('session', (s: http2.Http2Session) => {
      if (this.attaching) this.h2Conn.set(s, this.attaching);
    });
  }

  /** Serves one tunnel classified as HTTP/1.1 or h2c. */
  serve(socket: StreamSocket, proto: 'http1' | 'h2c', info: ConnInfo): void {
    if (proto === 'http1') {
      this.h1Conn.set(socket, info);
      this.h1.emit('connection', socket);
      return;
    }
    this.attaching = info;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.attaching = null;
    }
  }

  /** The L7 view of a request and its connection (shared with upgrades). */
  view(req: DownReq, info: ConnInfo): { request: L7Request; peer: L7Peer } {
    const url = req.url ?? '/';
    const { path, query } = splitPathQuery(url);
    const host = String((req as http2.Http2ServerRequest).authority ?? req.headers.host ?? formatSocketAddr(info.dst)).toLowerCase();
    const request: L7Request = { method: req.method ?? 'GET', path, query, host, headers: flattenHeaders(req.headers) };
    const id = info.peerIdentity;
    const peer: L7Peer = {
      sourceIp: info.peerAddr.ip,
      remoteIp: info.remoteIp,
      principal: id.principal(),
      namespace: id.namespace,
      destinationIp: info.dst.ip,
      destinationPort: info.dst.port,
    };
    return { request, peer };
  }

  decide(request: L7Request, peer: L7Peer, info: ConnInfo): L7Decision {
    const d = this.d;
    const input = { state: d.state, config: d.config(), waypoint: d.waypoint, network: d.network, clusterDomain: d.clusterDomain, target: info.target, request, peer, srcWorkload: info.srcWorkload, random: d.random, pickEndpoint: true };
    const dec = decideRequest(input);
    // A VirtualService may route a Service without endpoints of its own elsewhere: traffic management picks the endpoint then.
    if (dec.kind === 'local' && dec.flags === 'UH' && dec.route === null && d.traffic && info.target.kind === 'service' && virtualServiceFor(input.config.traffic.virtualServices, info.target.service, d.clusterDomain)) return decideRequest({ ...input, pickEndpoint: false });
    return dec;
  }

  get upstreams(): Upstreams {
    return this.d.upstreams;
  }

  /** Starts the request's trace span when tracing is on (plain requests and upgrades alike). */
  startSpan(rec: Run, target: string, request: L7Request, info: ConnInfo): void {
    const tracer = this.d.tracer?.();
    if (tracer) rec.span = tracer.start(httpSpanStart({ method: request.method, host: request.host, target, protocol: rec.httpVersion, headers: request.headers, peerIp: info.peerAddr.ip, peerIdentity: info.peerIdentity.toString(), destination: spanDestination(info), requestId: rec.requestId, tunnelTraceparent: info.tunnelTraceparent }));
  }

  private onRequest(req: DownReq, res: DownRes, info: ConnInfo | null): void {
    if (!info) {
      res.destroy();
      return;
    }
    const { request, peer } = this.view(req, info);
    const grpc = (request.headers['content-type'] ?? '').startsWith('application/grpc');
    const rec = this.recorder.begin(info, request, grpc, req.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${req.httpVersion}`);
    const xrid = requestId(request.headers['x-request-id']);
    rec.requestId = xrid;
    countBody(req, rec.reqCounter, grpc ? rec.reqFrames : null);
    // Counting made the body flow; hold it until it is piped upstream (the HTTP/2 session may still be opening).
    req.pause();
    res.once('close', () => rec.finish(res.writableFinished ? null : 'DC'));
    this.startSpan(rec, req.url ?? '/', request, info);
    const { applies, result: authn } = this.authenticate(request, info);
    if (authn instanceof Promise) {
      authn.then(
        (a) => this.authenticated(req, res, info, request, peer, rec, xrid, grpc, applies, a),
        (err: unknown) => localReply(res, rec, 500, 'internal error', '-', grpc, `jwt_authn_internal_error: ${errorMessage(err)}`),
      );
      return;
    }
    this.authenticated(req, res, info, request, peer, rec, xrid, grpc, applies, authn);
  }

  /** Request authentication of a request: the jwtRules that apply and the token's verification (null: no rule applies). */
  authenticate(request: L7Request, info: ConnInfo): { applies: ApplicableAuthn | null; result: AuthnResult | Promise<AuthnResult> | null } {
    const applies = this.d.authn?.applicable(this.d.config(), info.target.kind === 'service' ? info.target.service : null) ?? null;
    if (!applies || applies.rules.length === 0 || !this.d.authn) return NO_AUTHN;
    return { applies, result: this.d.authn.check(applies, request) };
  }

  /** The rest of a request once its token (if any) is verified: 401, or the L7 decision and forwarding. */
  private authenticated(req: DownReq, res: DownRes, info: ConnInfo, request: L7Request, peer: L7Peer, rec: Run, xrid: string, grpc: boolean, applies: ApplicableAuthn | null, authn: AuthnResult | null): void {
    if (rec.finished) return;
    rec.authn = authn;
    if (authn?.kind === 'fail') return localReply(res, rec, 401, authnFailureBody(authn), '-', grpc, `jwt_authn_access_denied{${authn.failure}}`, { 'www-authenticate': `Bearer realm="http://${request.host}${request.path}", error="invalid_token"` });
    if (authn?.kind === 'ok') request = { ...request, auth: authn.identity };
    const dec = this.decide(request, peer, info);
    rec.decision = dec;
    if (dec.kind === 'deny') return localReply(res, rec, 403, 'RBAC: access denied', '-', grpc, `rbac_access_denied_matched_policy[${dec.authz.policy ?? 'none'}]`);
    if (dec.kind === 'local') return localReply(res, rec, dec.status, dec.body, dec.flags, grpc, dec.details);
    if (dec.kind === 'redirect') {
      const h: HeaderBag = { location: dec.location };
      for (const m of dec.responseHeaders) applyHeaderModifier(h, m);
      return localReply(res, rec, dec.status, '', '-', false, 'via_upstream_redirect', h);
    }
    const ep = dec.endpoint as Endpoint;
    rec.endpoint = ep;
    const headers = forwardHeaders(req.headers, xrid);
    if (applies && authn) applyAuthnHeaders(headers, applies, authn);
    if (rec.span) Object.assign(headers, rec.span.upstream);
    for (const m of dec.requestHeaders) applyHeaderModifier(headers, m);
    if (dec.mirror && this.d.random() * 100 < dec.mirror.percent) this.d.mirror.send(req, dec, headers, info, grpc, this.upstreamIsH2(req, dec.mirror.backend, grpc));
    const traffic = this.d.traffic ? beginTraffic(this.d.traffic, { config: this.d.config(), state: this.d.state, clusterDomain: this.d.clusterDomain, target: info.target, decision: dec, request, peer, random: this.d.random }, { body: req, http1: req.httpVersion !== '2.0', request, peer, srcWorkload: info.srcWorkload, family: info.dst.ip.includes(':') ? 6 : 4 }) : null;
    if (traffic?.kind === 'local') return localReply(res, rec, traffic.answer.status, traffic.answer.body, traffic.answer.flags, grpc, traffic.answer.details);
    if (traffic?.kind === 'run') return this.runTraffic(traffic.run, req, res, rec, dec, headers, grpc);
    const timer = dec.timeoutMs !== null ? setTimeout(() => this.timeout(res, rec, grpc), dec.timeoutMs) : null;
    rec.onDone = () => {
      if (timer) clearTimeout(timer);
    };
    const b = dec.backend;
    if (this.upstreamIsH2(req, b ? { namespace: b.namespace, name: b.name, port: dec.backendPort } : null, grpc)) this.forwardH2(req, res, rec, ep, dec, headers, grpc);
    else this.forwardH1(req, res, rec, ep, dec, headers, grpc);
  }

  /**
   * The upstream protocol: HTTP/2 when the backend's Service port declares http2/grpc (or
   * the request is gRPC, which needs HTTP/2), HTTP/1.1 when it declares http, else the
   * client's own protocol.
   */
  upstreamIsH2(req: DownReq, backend: { namespace: string; name: string; port: number } | null, grpc: boolean): boolean {
    if (grpc) return true;
    const declared = backend ? declaredProtocol(this.d.config(), backend.namespace, backend.name, backend.port) : null;
    return declared === 'http2' || (declared === null && req.httpVersion === '2.0');
  }

  /** Traffic management drives the tries (retries, timeouts, faults, limits); the proxy sends each and relays the answer. */
  private runTraffic(t: TrafficRun, req: DownReq, res: DownRes, rec: Run, dec: Forward, headers: HeaderBag, grpc: boolean): void {
    rec.traffic = t;
    rec.onDone = () => {
      rec.flags = t.finish(rec.flags);
    };
    const h2 = this.upstreamIsH2(req, { namespace: t.plan.backend.namespace, name: t.plan.backend.name, port: t.plan.port }, grpc);
    t.start({
      send: (ep, no) => {
        rec.endpoint = ep;
        rec.abortUpstream = null;
        if (h2) this.forwardH2(req, res, rec, ep, dec, headers, grpc, no);
        else this.forwardH1(req, res, rec, ep, dec, headers, grpc, false, no);
      },
      reply: (a) => {
        if (a.error) rec.error = a.error;
        localReply(res, rec, a.status, a.body, a.flags, grpc || a.grpcStatus !== undefined, a.details, a.headers, a.grpcStatus);
      },
      timeout: () => this.timeout(res, rec, grpc),
      abort: () => rec.abortUpstream?.(),
    });
  }

  private forwardH1(req: DownReq, res: DownRes, rec: Run, ep: Endpoint, dec: Forward, headers: HeaderBag, grpc: boolean, retried = false, tryNo = 0): void {
    headers['host'] = dec.host;
    // An HTTP/2 request body may end in trailers, which HTTP/1.1 carries only in chunked framing.
    if (req.httpVersion === '2.0' && !hasNoBody(req)) delete headers['content-length'];
    const t = rec.traffic;
    const up = http.request({ agent: this.d.upstreams.agent(ep, t?.plan.policy.connectionPool), method: req.method, path: dec.path, headers, setHost: false });

    rec.abortUpstream = () => up.destroy();
    if (t) up.once('socket', () => t.connected(tryNo));
    up.on('response', (ur) => {
      if (t?.stale(tryNo)) return void ur.destroy();
      if (t?.onResponse(tryNo, ur.statusCode ?? 502, ur.headers['grpc-status'])) {
        // Retrying: a fully sent request's connection stays reusable; a half-sent one is dropped.
        if (up.writableFinished) ur.resume();
        else up.destroy();
        return;
      }
      rec.upstreamIdentity = (ur.socket as unknown as StreamSocket).peerIdentity ?? null;
      const h = responseHeaders(ur.headers);
      for (const m of dec.responseHeaders) applyHeaderModifier(h, m);
      if (t?.rateLimitHeaders) Object.assign(h, t.rateLimitHeaders);
      if (res.headersSent || res.destroyed) {
        ur.destroy();
        return;
      }
      res.writeHead(ur.statusCode ?? 502, h);
      rec.status = ur.statusCode ?? 502;
      this.pipeResponse(ur, res, rec, grpc, () => (ur.rawTrailers.length > 0 ? ur.trailers : null));
    });
    up.on('error', (err) => {
      if (t?.stale(tryNo)) return;
      // A pooled keep-alive connection the endpoint closed while idle fails on reuse before any
      // response; a request without a body is then sent once more (a new connection is made).
      if (!retried && up.reusedSocket && !rec.responded && rec.reqCounter.bytes === 0 && rec.flags === '-' && !res.destroyed) {
        rec.abortUpstream = null;
        req.unpipe(up);
        this.forwardH1(req, res, rec, ep, dec, headers, grpc, true, tryNo);
        return;
      }
      this.upstreamError(res, rec, err, grpc, tryNo);
    });
    const end = (trailers: Record<string, string> | null): void => {
      if (up.destroyed) return;
      if (trailers) up.addTrailers(trailers);
      up.end();
    };
    if (t?.body) t.body.attach(up, end);
    else forwardBody(req, up, end);
  }

  private forwardH2(req: DownReq, res: DownRes, rec: Run, ep: Endpoint, dec: Forward, headers: HeaderBag, grpc: boolean, tryNo = 0): void {
    const t = rec.traffic;
    this.d.upstreams.session(ep, t?.plan.policy.connectionPool).then(
      (session) => {
        if (res.destroyed || res.headersSent || t?.stale(tryNo)) return;
        t?.connected(tryNo);
        const out: http2.OutgoingHttpHeaders = { ...headers, ':method': req.method, ':path': dec.path, ':authority': dec.host, ':scheme': 'http' };
        if (grpc || req.headers['te'] === 'trailers') out['te'] = 'trailers';
        // With a body the stream stays open after the last DATA for the request's trailers ('wantTrailers').
        const bodyless = hasNoBody(req);
        let up: http2.ClientHttp2Stream;
        try {
          up = session.request(out, { endStream: bodyless, waitForTrailers: !bodyless });
        } catch (err) {
          return this.upstreamError(res, rec, err as Error, grpc, tryNo);
        }
        rec.upstreamIdentity = (session as unknown as { peerIdentity: SpiffeId | null }).peerIdentity;
        rec.abortUpstream = () => up.close(http2.constants.NGHTTP2_CANCEL);
        let trailers: http2.IncomingHttpHeaders | null = null;
        up.on('trailers', (t) => (trailers = t));
        up.on('response', (uh) => {
          if (t?.stale(tryNo)) return void up.close(http2.constants.NGHTTP2_CANCEL);
          const status = Number(uh[':status'] ?? 502);
          if (t?.onResponse(tryNo, status, uh['grpc-status'])) return void up.close(http2.constants.NGHTTP2_CANCEL);
          const h = responseHeaders(uh);
          for (const m of dec.responseHeaders) applyHeaderModifier(h, m);
          if (t?.rateLimitHeaders) Object.assign(h, t.rateLimitHeaders);
          if (res.headersSent || res.destroyed) {
            up.close();
            return;
          }
          if (grpc && uh['grpc-status'] !== undefined) {
            // A trailers-only answer (status in the headers, END_STREAM): relayed as headers + trailers, which gRPC clients read the same.
            trailers = { 'grpc-status': String(uh['grpc-status']), ...(uh['grpc-message'] !== undefined ? { 'grpc-message': String(uh['grpc-message']) } : {}) };
            delete h['grpc-status'];
            delete h['grpc-message'];
          }
          res.writeHead(status, h);
          rec.status = status;
          this.pipeResponse(up, res, rec, grpc, () => trailers);
        });
        up.on('error', (err) => {
          if (!t?.stale(tryNo)) this.upstreamError(res, rec, err, grpc, tryNo);
        });
        up.on('close', () => {
          if (!rec.responded && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !t?.stale(tryNo)) this.upstreamError(res, rec, new Error(`upstream reset the stream (code ${up.rstCode})`), grpc, tryNo, up.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM);
        });
        if (bodyless) {
          req.resume();
          return;
        }
        let reqTrailers: Record<string, string> | null = null;
        up.once('wantTrailers', () => up.sendTrailers(reqTrailers ?? {}));
        const end = (trailers: Record<string, string> | null): void => {
          if (up.destroyed) return;
          reqTrailers = trailers;
          up.end();
        };
        if (t?.body) t.body.attach(up, end);
        else forwardBody(req, up, end);
      },
      (err: Error) => {
        if (!t?.stale(tryNo)) this.upstreamError(res, rec, err, grpc, tryNo);
      },
    );
  }

  /** Streams the upstream body to the client, then its trailers (gRPC status), then ends. */
  private pipeResponse(body: Readable, res: DownRes, rec: Run, grpc: boolean, trailers: () => Record<string, string | string[] | undefined> | null): void {
    rec.responded = true;
    countBody(body, rec.resCounter, grpc ? rec.resFrames : null);
    body.on('end', () => {
      const clean = trailerFields(trailers());
      if (clean) {
        if (clean['grpc-status'] !== undefined) rec.grpcStatus = clean['grpc-status'];
        res.addTrailers(clean);
      }
      res.end();
    });
    body.on('error', () => {
      rec.flags = 'UC';
      res.destroy();
    });
    (body as Readable).pipe(res as unknown as NodeJS.WritableStream, { end: false });
  }

  private upstreamError(res: DownRes, rec: Run, err: Error, grpc: boolean, tryNo = 0, refusedStream = false): void {
    // A timeout or local reply already decided the outcome (and aborted the upstream).
    if (rec.finished || rec.flags !== '-') return;
    const error = `${classifyError(err)}: ${errorMessage(err)}`;
    if (res.headersSent || rec.responded) {
      rec.error = error;
      rec.flags = 'UC';
      res.destroy();
      return;
    }
    // Before any response: traffic management retries or answers (its reply carries the error).
    if (rec.traffic?.onError(tryNo, refusedStream, error)) return;
    rec.error = error;
    localReply(res, rec, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${errorMessage(err)}`, 'UF', grpc, 'upstream_reset_before_response_started');
  }

  private timeout(res: DownRes, rec: Run, grpc: boolean): void {
    rec.abortUpstream?.();
    if (res.headersSent || rec.responded) {
      rec.flags = 'UT';
      res.destroy();
      return;
    }
    localReply(res, rec, 504, 'upstream request timeout', 'UT', grpc, 'upstream_response_timeout');
  }
}

/** Counts body bytes (and gRPC messages) as they stream; one listener per body, nothing per chunk. */
function countBody(body: Readable, counter: { bytes: number }, frames: GrpcFrameCounter | null): void {
  body.on('data', (c: Buffer) => {
    counter.bytes += c.length;
    frames?.feed(c);
  });
}

function responseHeaders(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): HeaderBag {
  const out: HeaderBag = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || HOP.has(k)) continue;
    out[k] = v as string | string[];
  }
  return out;
}

/**
 * A response the waypoint makes itself. gRPC requests get Envoy's gRPC form: HTTP 200 with
 * grpc-status (mapped from the HTTP status) and grpc-message, no body.
 */
function localReply(res: DownRes, rec: Run, status: number, body: string, flags: string, grpc: boolean, details: string, extra: HeaderBag = {}, grpcCode?: number): void {
  rec.flags = flags;
  rec.details = details;
  rec.responded = true;
  rec.abortUpstream?.();
  if (res.headersSent || res.destroyed) return;
  if (grpc) {
    const gs = grpcCode ?? grpcStatusForHttp(status);
    rec.status = 200;
    rec.grpcStatus = String(gs);
    res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': String(gs), 'grpc-message': encodeURIComponent(body || details) });
    res.end();
    return;
  }
  rec.status = status;
  const b = body ? Buffer.from(body) : null;
  res.writeHead(status, { ...extra, ...(b ? { 'content-type': 'text/plain', 'content-length': String(b.length) } : { 'content-length': '0' }) });
  rec.resCounter.bytes += b?.length ?? 0;
  if (b) res.end(b);
  else res.end();
}

/** The span's destination: the Service host and port as addressed, or the workload address. */
function spanDestination(info: ConnInfo): string {
  return info.target.kind === 'service' ? `${info.target.service.hostname}:${info.dst.port}` : formatSocketAddr(info.dst);
}
