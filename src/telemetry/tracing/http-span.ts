import type { RequestSpan, SpanStart } from './request-tracer';

/** The facts of an HTTP request a proxy span starts with, role-neutral. */
export interface HttpSpanFacts {
  readonly method: string;
  readonly host: string;
  /** Path with query. */
  readonly target: string;
  readonly protocol: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly peerIp: string;
  readonly peerIdentity: string;
  /** The destination as addressed: `<service hostname>:<port>` or `<ip>:<port>`. */
  readonly destination: string;
  readonly requestId: string;
  /** The HBONE CONNECT's own traceparent, when the request came through a tunnel that had one. */
  readonly tunnelTraceparent: string | undefined;
}

/**
 * The span start of a proxied request: Envoy's operation name (`<destination>/*`), OpenTelemetry's
 * HTTP server attributes, and the tags Istio's proxies add (`component`, `guid:x-request-id`,
 * `peer.address`, `istio.source.principal`).
 */
export function httpSpanStart(f: HttpSpanFacts): SpanStart {
  return {
    name: `${f.destination}/*`,
    traceparent: f.headers['traceparent'],
    tracestate: f.headers['tracestate'],
    tunnelTraceparent: f.tunnelTraceparent,
    attributes: {
      component: 'proxy',
      'http.request.method': f.method,
      'url.path': f.target,
      'server.address': f.host,
      'network.protocol.name': 'http',
      'network.protocol.version': f.protocol.replace(/^HTTP\//, ''),
      'user_agent.original': f.headers['user-agent'] ?? '',
      'client.address': f.peerIp,
      'peer.address': f.peerIp,
      'istio.source.principal': f.peerIdentity,
      'guid:x-request-id': f.requestId,
    },
  };
}

/** The outcome a proxy span ends with. */
export interface HttpSpanOutcome {
  readonly status: number;
  readonly grpcStatus: string | null;
  readonly flags: string;
  readonly details: string;
  readonly upstreamHost: string | null;
  readonly upstreamCluster: string | null;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly requestPrincipal: string | null;
}

/** Ends the span: an error when the proxy answered 5xx or set a response flag (as Envoy marks spans). */
export function endHttpSpan(span: RequestSpan, o: HttpSpanOutcome): void {
  span.end(
    {
      'http.response.status_code': o.status,
      response_flags: o.flags,
      'response.code_details': o.details,
      request_size: o.requestBytes,
      response_size: o.responseBytes,
      ...(o.grpcStatus !== null ? { 'rpc.grpc.status_code': Number(o.grpcStatus) } : {}),
      ...(o.upstreamHost ? { 'upstream.address': o.upstreamHost } : {}),
      ...(o.upstreamCluster ? { upstream_cluster: o.upstreamCluster } : {}),
      ...(o.requestPrincipal ? { 'istio.request.principal': o.requestPrincipal } : {}),
    },
    o.status >= 500 || o.flags !== '-',
  );
}
