import { Client, Metadata, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcHeaders } from '../config/headers';
import { CaChannelCredentials, grpcTarget, readRootPem, readToken, targetHost } from '../identity/ca-credentials';
import type { Reason } from '../errors';
import { systemClock, type Clock, type TimerHandle } from '../util/clock';
import { nextXdsRetry, XDS_INITIAL_BACKOFF_MS, XDS_MAX_BACKOFF_MS, type XdsBackoffLimits } from './backoff';
import { classifyTermination, type Termination } from './termination';
import type { TerminationReason, XdsMetrics } from './metrics';
import { ADDRESS_TYPE, DELTA_ADS_PATH, type PbDeltaRequest, type PbDeltaResponse, type PbNode, type PbResource, type XdsCodec, type XdsTypeUrl } from './proto';
import { decodeResource, isRejected, type DecodedResource, type RejectedResource } from './resources';

/** Applies one response of a type; resolves to the resources it could not apply (NACKed). */
export type XdsHandler = (typeUrl: XdsTypeUrl, resources: readonly DecodedResource[], removed: readonly string[]) => Promise<readonly RejectedResource[]>;

/** Resources decoded per event-loop turn: a 10k-resource push must not stall the data path. */
const DECODE_CHUNK = 256;

/** Lets queued I/O (the data path) run between chunks of a large push. */
export function yieldTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface AdsClientOptions {
  /** XDS_ADDRESS (`https://` optional). */
  readonly address: string;
  /** XDS_ROOT_CA: file, inline PEM or SYSTEM; re-read on every connect. */
  readonly rootCa: string;
  /** ALT_XDS_HOSTNAME: the name the server certificate is verified against. */
  readonly altHostname: string | null;
  /** AUTH_TOKEN: file (re-read on every connect) or literal. */
  readonly authToken: string;
  readonly clusterId: string;
  /** XDS_HEADER_<NAME> → extra gRPC metadata. */
  readonly headers: GrpcHeaders;
  readonly node: PbNode;
  /** XDS_ON_DEMAND: Address resources only when asked for. */
  readonly onDemand: boolean;
  readonly types: readonly XdsTypeUrl[];
  readonly codec: XdsCodec;
  readonly handler: XdsHandler;
  readonly metrics: XdsMetrics;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Reconnect backoff (ztunnel's: 10 ms, doubled before each wait after a failure, capped at 15 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

interface TypeStatus {
  /** Resource name → version, as last received (sent back as initial_resource_versions). */
  readonly known: Map<string, string>;
  version: string;
  nonce: string;
  responses: number;
  lastAck: { nonce: string; at: string } | null;
  lastNack: { nonce: string; at: string; error: string } | null;
}

type ConnState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

/** One stream attempt, as /config_dump shows it (the reconnect schedule is visible, not just its latest step). */
interface Attempt {
  readonly connection: number;
  readonly startedAt: number;
  endedAt: number | null;
  termination: TerminationReason | null;
  /** The wait before the next attempt. */
  waitMs: number | null;
}

/** Attempts kept for /config_dump. */
const ATTEMPT_HISTORY = 32;

const MAX_MESSAGE_BYTES = 200 * 1024 * 1024;

/**
 * Delta ADS client: one bidirectional DeltaAggregatedResources stream carrying every type.
 * Each response is decoded, handed to the handler, and answered with an ACK, or a NACK
 * whose error_detail names every rejected resource (the valid ones are applied). On any
 * stream end it reconnects with backoff, sending the versions it holds as
 * initial_resource_versions; the state stays in force meanwhile.
 */
export class AdsClient {
  /** Resolves once the first response of every non-on-demand type was ACKed (a NACKed one does not count). */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private readonly awaiting: Set<string>;
  private readonly status = new Map<XdsTypeUrl, TypeStatus>();
  private readonly clock: Clock;
  private readonly limits: XdsBackoffLimits;
  /** The value the next failure's wait grows from (ztunnel carries it from attempt to attempt). */
  private backoffCarryMs: number;
  private readonly attempts: Attempt[] = [];
  private state: ConnState = 'idle';
  private client: Client | null = null;
  private call: ClientDuplexStream<PbDeltaRequest, PbDeltaResponse> | null = null;
  private timer: TimerHandle | null = null;
  private connectionId = 0;
  private connectedSince: string | null = null;
  private lastError: { at: string; reason: Reason | null; message: string } | null = null;
  private nextRetryMs = 0;
  /** Responses are handled one at a time, in arrival order (each may yield between chunks). */
  private handling: Promise<void> = Promise.resolve();
  /** On-demand names waiting for the server's answer. */
  private readonly pending = new Map<string, Set<(answered: boolean) => void>>();

  constructor(private readonly o: AdsClientOptions) {
    this.clock = o.clock ?? systemClock;
    this.limits = { initialMs: o.initialBackoffMs ?? XDS_INITIAL_BACKOFF_MS, maxMs: o.maxBackoffMs ?? XDS_MAX_BACKOFF_MS };
    this.backoffCarryMs = this.limits.initialMs;
    for (const t of o.types) this.status.set(t, { known: new Map(), version: '', nonce: '', responses: 0, lastAck: null, lastNack: null });
    this.awaiting = new Set(o.types.filter((t) => !(o.onDemand && t === ADDRESS_TYPE)));
    this.ready = new Promise((r) => (this.resolveReady = r));
    if (this.awaiting.size === 0) this.resolveReady();
  }

  start(): void {
    if (this.state !== 'idle') return;
    void this.connect();
  }

  close(): void {
    this.state = 'closed';
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.teardown();
    this.wakeAll();
  }

  /**
   * On-demand lookup (XDS_ON_DEMAND): subscribes to `name` (`network/ip`, `ns/hostname` or a
   * uid) and resolves true once the server answered for it (pushed or removed), false
   * after `timeoutMs` or when the stream ends while waiting. Asked while disconnected, the
   * name goes out with the next stream's initial_resource_versions (answered then, if
   * within the wait). The state is updated before it resolves.
   */
  demand(name: string, timeoutMs: number): Promise<boolean> {
    const st = this.status.get(ADDRESS_TYPE);
    if (!this.o.onDemand || !st || this.state === 'closed') return Promise.resolve(false);
    // Remembered with no version, so a reconnect re-subscribes and the server always sends it.
    if (!st.known.has(name)) st.known.set(name, '');
    return new Promise((resolve) => {
      let waiters = this.pending.get(name);
      if (!waiters) this.pending.set(name, (waiters = new Set()));
      const set = waiters;
      const done = (answered: boolean): void => {
        this.clock.clearTimeout(t);
        set.delete(done);
        if (set.size === 0 && this.pending.get(name) === set) this.pending.delete(name);
        resolve(answered);
      };
      const t = this.clock.setTimeout(() => done(false), timeoutMs);
      set.add(done);
      if (set.size === 1) this.send({ type_url: ADDRESS_TYPE, resource_names_subscribe: [name] });
      this.o.logger.debug({ name }, 'xds on-demand request');
    });
  }

  dump(): unknown {
    const types: Record<string, unknown> = {};
    for (const [t, s] of this.status) {
      types[t] = { version: s.version, nonce: s.nonce, resources: s.known.size, responses: s.responses, lastAck: s.lastAck, lastNack: s.lastNack };
    }
    return {
      address: this.o.address,
      state: this.state,
      connectionId: this.connectionId,
      connectedSince: this.connectedSince,
      /** The delay before the latest reconnect attempt (0 before any). */
      retryDelayMs: this.nextRetryMs,
      lastError: this.lastError,
      /** Types whose first response has not been ACKed yet (readiness waits for them). */
      awaitingFirstAck: [...this.awaiting],
      attempts: this.attempts.map((a) => ({ ...a, startedAt: new Date(a.startedAt).toISOString(), endedAt: a.endedAt === null ? null : new Date(a.endedAt).toISOString(), startedAtMs: a.startedAt, endedAtMs: a.endedAt })),
      onDemand: this.o.onDemand,
      pendingOnDemand: [...this.pending.keys()],
      /** On-demand mode: every Address name asked for that the server holds for us (what the data path needed). */
      ...(this.o.onDemand ? { onDemandNames: [...(this.status.get(ADDRESS_TYPE)?.known.keys() ?? [])] } : {}),
      node: this.o.node.id,
      types,
    };
  }

  private async connect(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    const id = ++this.connectionId;
    this.attempts.push({ connection: id, startedAt: this.clock.now(), endedAt: null, termination: null, waitMs: null });
    if (this.attempts.length > ATTEMPT_HISTORY) this.attempts.shift();
    const target = grpcTarget(this.o.address);
    let root: string | null;
    let token: string | null;
    try {
      root = await readRootPem(this.o.rootCa, 'XDS_ROOT_CA');
    } catch (err) {
      this.terminated(id, { metric: 'ConnectionError', reason: 'XDS_TLS', message: `xDS connection to ${this.o.address}: ${(err as Error).message}` });
      return;
    }
    try {
      token = await readToken(this.o.authToken);
    } catch (err) {
      this.terminated(id, { metric: 'ConnectionError', reason: 'XDS_AUTH', message: `xDS connection to ${this.o.address}: ${(err as Error).message}` });
      return;
    }
    // close() may have run while the files were read.
    if ((this.state as ConnState) === 'closed') return;
    const options: Record<string, string | number> = {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      // Our backoff is the retry policy: a fresh channel per attempt, never grpc-js's own
      // reconnect backoff shared through the global subchannel pool.
      'grpc.use_local_subchannel_pool': 1,
    };
    if (this.o.altHostname) options['grpc.default_authority'] = this.o.altHostname;
    // The CA client's TLS: the server certificate verified against the root and ALT_XDS_HOSTNAME
    // or the URL host, no client certificate, SNI only for host names.
    const client = (this.client = new Client(target, new CaChannelCredentials(root, targetHost(target), this.o.altHostname), options));
    const md = new Metadata();
    if (token !== null) md.set('authorization', `Bearer ${token}`);
    md.set('clusterid', this.o.clusterId);
    for (const [k, v] of this.o.headers) md.set(k, v);
    const codec = this.o.codec;
    const call = client.makeBidiStreamRequest<PbDeltaRequest, PbDeltaResponse>(DELTA_ADS_PATH, codec.encodeRequest, codec.decodeResponse, md, {});
    this.call = call;
    let received = 0;
    call.on('data', (res: PbDeltaResponse) => {
      if (this.call !== call) return;
      if (received++ === 0) {
        this.state = 'connected';
        this.connectedSince = new Date(this.clock.now()).toISOString();
        this.o.logger.info({ address: this.o.address, connection: id }, 'xds stream established');
      }
      this.handling = this.handling
        .then(() => this.onResponse(res, call))
        .catch((err: unknown) => this.o.logger.error({ err, type_url: res.type_url, nonce: res.nonce }, 'xds response handling failed unexpectedly'));
    });
    // grpc-js reports a non-OK status both as 'error' and as 'status'; 'status' decides.
    call.on('error', () => undefined);
    call.on('status', (s: StatusObject) => {
      if (this.call !== call) return;
      this.terminated(id, classifyTermination(this.o.address, s, received > 0));
    });
    for (const t of this.o.types) {
      const st = this.status.get(t) as TypeStatus;
      const req: PbDeltaRequest = { node: this.o.node, type_url: t, initial_resource_versions: Object.fromEntries(st.known) };
      // "Subscribe to nothing": subscribing and unsubscribing the wildcard in one message.
      if (this.o.onDemand && t === ADDRESS_TYPE) {
        req.resource_names_subscribe = ['*'];
        req.resource_names_unsubscribe = ['*'];
      }
      call.write(req);
    }
    this.o.logger.debug({ address: this.o.address, connection: id, known: Object.fromEntries([...this.status].map(([t, s]) => [t, s.known.size])) }, 'xds stream opened');
  }

  private async onResponse(res: PbDeltaResponse, call: ClientDuplexStream<PbDeltaRequest, PbDeltaResponse>): Promise<void> {
    if (this.call !== call) return;
    const url = res.type_url;
    let bytes = 0;
    for (const r of res.resources) bytes += r.resource?.value.length ?? 0;
    this.o.metrics.messages.labels(url).inc();
    this.o.metrics.messageBytes.labels(url).inc(bytes);
    const st = this.status.get(url as XdsTypeUrl);
    if (!st) {
      this.o.logger.error({ type_url: url }, 'xds response of a type we did not subscribe to; answered with a NACK');
      this.send({ type_url: url, response_nonce: res.nonce, error_detail: { message: `unsupported type ${url}` } });
      return;
    }
    const decoded: DecodedResource[] = [];
    const rejected: RejectedResource[] = [];
    for (let i = 0; i < res.resources.length; i++) {
      if (i > 0 && i % DECODE_CHUNK === 0) {
        await yieldTurn();
        // The stream ended meanwhile: nothing is applied or ACKed; the next stream re-sends it.
        if (this.call !== call) return;
      }
      const d = decodeResource(this.o.codec, url, res.resources[i] as PbResource);
      if (isRejected(d)) rejected.push(d);
      else decoded.push(d);
    }
    rejected.push(...(await this.o.handler(url as XdsTypeUrl, decoded, res.removed_resources)));
    const rejectedNames = new Set(rejected.map((r) => r.name));
    for (const n of res.removed_resources) st.known.delete(n);
    // A rejected resource is not recorded as held: on reconnect the server must send it again.
    for (const r of res.resources) if (!rejectedNames.has(r.name)) st.known.set(r.name, r.version);
    st.version = res.system_version_info;
    st.nonce = res.nonce;
    st.responses++;
    const at = new Date(this.clock.now()).toISOString();
    if (rejected.length === 0) {
      st.lastAck = { nonce: res.nonce, at };
      this.send({ type_url: url, response_nonce: res.nonce });
      this.o.logger.debug({ type_url: url, nonce: res.nonce, resources: res.resources.length, removed: res.removed_resources.length }, 'xds ACK');
    } else {
      const error = rejected.map((r) => `${r.name}: ${r.reason}`).join('; ');
      st.lastNack = { nonce: res.nonce, at, error };
      this.send({ type_url: url, response_nonce: res.nonce, error_detail: { message: error } });
      this.o.logger.error({ reason: 'XDS_REJECTED', type_url: url, nonce: res.nonce, rejected: rejected.length, applied: res.resources.length - rejected.length, error }, 'xds NACK: rejected resources; the others were applied');
    }
    for (const n of res.removed_resources) this.notify(n);
    for (const r of res.resources) this.notify(r.name);
    // Only an ACKed response makes a type ready: a NACKed first response means the proxy
    // does not yet hold a state it accepted for that type.
    if (rejected.length === 0 && this.awaiting.delete(url) && this.awaiting.size === 0) {
      this.o.logger.info({ address: this.o.address }, 'xds initial sync complete');
      this.resolveReady();
    }
  }

  private notify(name: string): void {
    const waiters = this.pending.get(name);
    if (!waiters) return;
    for (const w of [...waiters]) w(true);
  }

  private wakeAll(): void {
    for (const waiters of [...this.pending.values()]) for (const w of [...waiters]) w(false);
  }

  private send(req: PbDeltaRequest): void {
    if (this.call && this.state !== 'closed') this.call.write(req);
  }

  private terminated(id: number, t: Termination): void {
    if (this.state === 'closed' || id !== this.connectionId) return;
    this.teardown();
    this.o.metrics.terminations.labels(t.metric).inc();
    this.connectedSince = null;
    const retry = nextXdsRetry(this.backoffCarryMs, t.metric, this.limits);
    this.backoffCarryMs = retry.carryMs;
    const delay = retry.waitMs;
    this.nextRetryMs = delay;
    const attempt = this.attempts.find((a) => a.connection === id);
    if (attempt) {
      attempt.endedAt = this.clock.now();
      attempt.termination = t.metric;
      attempt.waitMs = delay;
    }
    this.state = 'backoff';
    if (t.reason !== null) {
      this.lastError = { at: new Date(this.clock.now()).toISOString(), reason: t.reason, message: t.message };
      this.o.logger.warn({ reason: t.reason, address: this.o.address, connection: id, retryInMs: delay }, t.message);
    } else {
      this.o.logger.info({ address: this.o.address, connection: id, retryInMs: delay, termination: t.metric }, t.message);
    }
    // Waiters for on-demand answers give up now; the caller proceeds with what the state has.
    this.wakeAll();
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }

  private teardown(): void {
    const call = this.call;
    const client = this.client;
    this.call = null;
    this.client = null;
    call?.cancel();
    client?.close();
  }
}
