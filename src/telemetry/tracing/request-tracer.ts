import type { Attributes, Context, Link, Span, SpanContext, TextMapPropagator, Tracer } from '@opentelemetry/api';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';

export interface RequestTracerOptions {
  /** OTLP/HTTP traces URL, used as is (e.g. http://collector:4318/v1/traces). */
  readonly endpoint: string;
  /** `service.name` of the exported resource. */
  readonly serviceName: string;
  /** Resource attributes besides service.name (k8s namespace, pod, mesh id). */
  readonly resource: Readonly<Record<string, string>>;
  /** Percentage of new traces (no incoming traceparent) sampled; an incoming traceparent's flag is followed. */
  readonly samplingPercent: number;
  readonly logger: Logger;
  /** How long spans are batched before an export. */
  readonly exportDelayMs: number;
}

/** What a span starts with: the incoming trace headers, the HBONE tunnel's own traceparent and the request's attributes. */
export interface SpanStart {
  readonly name: string;
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  /** The traceparent of the CONNECT that carried the request (minted per connection by the client's node proxy), linked. */
  readonly tunnelTraceparent: string | undefined;
  readonly attributes: Attributes;
}

/** One request's span; `upstream` holds the trace headers to send with the forwarded request (this span as parent). */
export interface RequestSpan {
  readonly upstream: Readonly<Record<string, string>>;
  end(attributes: Attributes, error: boolean): void;
}

type OtelApi = typeof import('@opentelemetry/api');

/**
 * Request spans exported with OpenTelemetry's SDK over OTLP/HTTP (JSON). Built only when an
 * endpoint is configured, so with tracing off none of the SDK is even loaded. Nothing is
 * registered globally: the provider, propagator and contexts are this object's own, so two
 * roles in one process never share a tracer. Parent-based sampling: a request that brings a
 * W3C traceparent continues that trace (sampled as its flag says), the span becomes the
 * parent of the upstream request; the HBONE CONNECT's traceparent is recorded as a link.
 */
export class RequestTracer {
  private constructor(
    private readonly api: OtelApi,
    private readonly provider: BasicTracerProvider,
    private readonly tracer: Tracer,
    private readonly propagator: TextMapPropagator,
  ) {}

  static async create(o: RequestTracerOptions): Promise<RequestTracer> {
    const [api, core, sdk, otlp, resources] = await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/core'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
    const exporter = new otlp.OTLPTraceExporter({ url: o.endpoint, timeoutMillis: 10_000 });
    const provider = new sdk.BasicTracerProvider({
      resource: resources.resourceFromAttributes({ 'service.name': o.serviceName, ...o.resource }),
      sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(o.samplingPercent / 100) }),
      spanProcessors: [new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: o.exportDelayMs, maxQueueSize: 4096, maxExportBatchSize: 512 })],
    });
    o.logger.info({ endpoint: o.endpoint, samplingPercent: o.samplingPercent }, 'tracing: request spans exported over OTLP/HTTP');
    return new RequestTracer(api, provider, provider.getTracer('ztunnel-ts'), new core.W3CTraceContextPropagator());
  }

  start(s: SpanStart): RequestSpan {
    const api = this.api;
    const carrier: Record<string, string> = {};
    if (s.traceparent) carrier['traceparent'] = s.traceparent;
    if (s.tracestate) carrier['tracestate'] = s.tracestate;
    const parent: Context = this.propagator.extract(api.ROOT_CONTEXT, carrier, api.defaultTextMapGetter);
    const links: Link[] = [];
    const tunnel = s.tunnelTraceparent ? this.spanContextOf(s.tunnelTraceparent) : null;
    if (tunnel) links.push({ context: tunnel, attributes: { 'link.kind': 'hbone_connect' } });
    const span: Span = this.tracer.startSpan(s.name, { kind: api.SpanKind.SERVER, attributes: s.attributes, links }, parent);
    const upstream: Record<string, string> = {};
    this.propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), upstream, api.defaultTextMapSetter);
    return {
      upstream,
      end: (attributes, error) => {
        if (!span.isRecording()) return;
        span.setAttributes(attributes);
        if (error) span.setStatus({ code: api.SpanStatusCode.ERROR });
        span.end();
      },
    };
  }

  /** Exports what is batched, then stops. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }

  private spanContextOf(traceparent: string): SpanContext | null {
    const ctx = this.propagator.extract(this.api.ROOT_CONTEXT, { traceparent }, this.api.defaultTextMapGetter);
    return this.api.trace.getSpanContext(ctx) ?? null;
  }
}
