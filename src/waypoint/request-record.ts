import type { Logger } from 'pino';
import type { Reason } from '../errors';
import type { SpiffeId } from '../identity/spiffe';
import type { RequestMetrics } from '../telemetry/request-metrics';
import { formatSocketAddr } from '../util/socket-addr';
import { GrpcFrameCounter } from './grpc-frames';
import type { Endpoint, L7Decision } from './l7/decide';
import type { L7Request } from './l7/request';
import type { ConnInfo } from './request-context';
import type { AuthnResult } from './authn/types';
import { endHttpSpan } from '../telemetry/tracing/http-span';
import type { RequestSpan } from '../telemetry/tracing/request-tracer';
import type { TrafficRun } from './traffic/run';

/**
 * One request's telemetry, filled in as it proceeds and recorded exactly once when the
 * downstream response closes: Istio's request metrics (reporter "waypoint") and one
 * `request complete` access-log line.
 */
export class RequestRun {
  readonly start = performance.now();
  requestId = '';
  readonly reqCounter = { bytes: 0 };
  readonly resCounter = { bytes: 0 };
  readonly reqFrames = new GrpcFrameCounter();
  readonly resFrames = new GrpcFrameCounter();
  decision: L7Decision | null = null;
  endpoint: Endpoint | null = null;
  upstreamIdentity: SpiffeId | null = null;
  status = 0;
  grpcStatus: string | null = null;
  flags = '-';
  details = 'via_upstream';
  error: string | null = null;
  /** The response (or a local reply) has started. */
  responded = false;
  finished = false;
  abortUpstream: (() => void) | null = null;
  /** Traffic management's run for this request (retries, faults, limits), if any applies. */
  traffic: TrafficRun | null = null;
  onDone: (() => void) | null = null;
  /** Request authentication's outcome (null: no RequestAuthentication applies). */
  authn: AuthnResult | null = null;
  /** The request's trace span, when tracing is on. */
  span: RequestSpan | null = null;

  constructor(
    private readonly recorder: RequestRecorder,
    readonly info: ConnInfo,
    readonly request: L7Request,
    readonly grpc: boolean,
    readonly httpVersion: string,
  ) {}

  /** Records once; `downstreamFlag` = the client went away before the response finished. */
  finish(downstreamFlag: 'DC' | null): void {
    if (this.finished) return;
    this.finished = true;
    if (downstreamFlag && this.flags === '-') this.flags = downstreamFlag;
    if (downstreamFlag) this.abortUpstream?.();
    this.onDone?.();
    this.recorder.record(this);
  }
}

export class RequestRecorder {
  private readonly access: Logger;

  constructor(
    private readonly metrics: RequestMetrics,
    logger: Logger,
  ) {
    this.access = logger.child({ scope: 'access' });
  }

  begin(info: ConnInfo, request: L7Request, grpc: boolean, httpVersion: string): RequestRun {
    return new RequestRun(this, info, request, grpc, httpVersion);
  }

  record(r: RequestRun): void {
    const durationMs = performance.now() - r.start;
    const d = r.decision;
    const target = r.info.target;
    const dstService = (d?.kind === 'forward' ? d.backend : null) ?? d?.service ?? (target.kind === 'service' ? target.service : null);
    const dstWorkload = r.endpoint?.workload ?? (target.kind === 'workload' ? target.workload : null);
    this.metrics.record({
      reporter: 'waypoint',
      srcWorkload: r.info.srcWorkload,
      srcIdentity: r.info.peerIdentity,
      dstService,
      dstWorkload,
      dstIdentity: r.upstreamIdentity,
      protocol: r.grpc ? 'grpc' : 'http',
      responseCode: r.status,
      grpcStatus: r.grpc ? r.grpcStatus : null,
      flags: r.flags,
      mtls: true,
      durationMs,
      requestBytes: r.reqCounter.bytes,
      responseBytes: r.resCounter.bytes,
      requestMessages: r.reqFrames.messages,
      responseMessages: r.resFrames.messages,
    });
    const s = r.info.srcWorkload;
    const rec: Record<string, unknown> = {
      'src.addr': formatSocketAddr(r.info.peerAddr),
      ...(s ? { 'src.workload': s.name, 'src.namespace': s.namespace } : {}),
      'src.identity': r.info.peerIdentity.toString(),
      'dst.addr': formatSocketAddr(r.info.dst),
      ...(dstService ? { 'dst.service': dstService.hostname } : {}),
      ...(dstWorkload ? { 'dst.workload': dstWorkload.name, 'dst.namespace': dstWorkload.namespace } : {}),
      ...(r.upstreamIdentity ? { 'dst.identity': r.upstreamIdentity.toString() } : {}),
      upstream_host: r.endpoint ? formatSocketAddr({ ip: r.endpoint.ip, port: r.endpoint.targetPort }) : null,
      method: r.request.method,
      authority: r.request.host,
      path: r.request.query ? `${r.request.path}?${r.request.query}` : r.request.path,
      protocol: r.httpVersion,
      response_code: r.status,
      ...(r.grpc ? { grpc_status: r.grpcStatus } : {}),
      response_flags: r.flags,
      response_code_details: r.details,
      duration: `${Math.round(durationMs)}ms`,
      bytes_received: r.reqCounter.bytes,
      bytes_sent: r.resCounter.bytes,
      x_request_id: r.requestId,
      ...(d?.route ? { route: `${d.route.route.kind}/${d.route.route.meta.namespace}/${d.route.route.meta.name}#${d.route.rule.index}` } : {}),
      ...(d?.authz.policy ? { policy: d.authz.policy } : {}),
      ...(d && d.authz.audited.length > 0 ? { audit: d.authz.audited } : {}),
      ...(r.error ? { error: r.error } : {}),
      ...authnLogFields(r.authn),
    };
    if (r.span) endHttpSpan(r.span, { status: r.status, grpcStatus: r.grpc ? r.grpcStatus : null, flags: r.flags, details: r.details, upstreamHost: r.endpoint ? formatSocketAddr({ ip: r.endpoint.ip, port: r.endpoint.targetPort }) : null, upstreamCluster: dstService ? `outbound|${r.info.dst.port}||${dstService.hostname}` : null, requestBytes: r.reqCounter.bytes, responseBytes: r.resCounter.bytes, requestPrincipal: r.authn?.kind === 'ok' ? r.authn.identity.principal : null });
    if (r.flags === '-' && r.status < 500) this.access.info(rec, 'request complete');
    else this.access.warn(rec, 'request complete');
  }
}

/** Access-log fields of request authentication: the jwtRule that decided, the request principal or why the token was refused. */
function authnLogFields(a: AuthnResult | null): Record<string, unknown> {
  if (!a || a.kind === 'none') return {};
  if (a.kind === 'ok') return { 'jwt.rule': a.rule, 'request.principal': a.identity.principal };
  return { 'jwt.rule': a.rule, reason: 'JWT_INVALID' satisfies Reason, 'jwt.failure': a.failure, error: a.message };
}
