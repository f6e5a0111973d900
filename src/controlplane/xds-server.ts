import { status, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { bearerToken, type Caller } from '../ca/authn';
import { DELTA_ADS_PATH, XDS_TYPES, type PbDeltaRequest, type PbDeltaResponse, type PbResource, type XdsCodec, type XdsTypeUrl } from '../xds/proto';
import { toPbResource, type ServedResource, type Snapshot } from './snapshot';

/** What one stream subscribed to for one type, and what the client holds (name → version). */
interface Subscription {
  /** Wildcard: every resource. Otherwise only `names` (on-demand). */
  readonly wildcard: boolean;
  readonly names: Set<string>;
  readonly held: Map<string, string>;
  lastAck: string | null;
  lastNack: { nonce: string; error: string } | null;
}

interface Stream {
  readonly id: number;
  readonly who: string;
  readonly call: ServerDuplexStream<PbDeltaRequest, PbDeltaResponse>;
  node: string;
  readonly subs: Map<XdsTypeUrl, Subscription>;
  nonces: number;
}

export interface XdsServerOptions {
  readonly codec: XdsCodec;
  readonly logger: Logger;
  /** Bearer token → caller (CA_TOKENS): the same callers the CA accepts. */
  readonly callers: ReadonlyMap<string, Caller>;
}

export interface XdsServerStats {
  streams: number;
  pushes: number;
  acks: number;
  nacks: { node: string; typeUrl: string; error: string }[];
  /** initial_resource_versions sizes of every stream's first request per type, in arrival order. */
  initialVersions: { typeUrl: string; count: number }[];
}

/**
 * The delta ADS side of the dev control plane. Every stream subscribes per type (wildcard,
 * or on-demand names: a resource name or a `network/ip` alias); each snapshot change is
 * pushed as a delta of what that client holds: changed resources and removed names only.
 * A reconnecting client's initial_resource_versions are honoured: unchanged resources are
 * not re-sent and ones that disappeared meanwhile are removed. Callers authenticate with a
 * bearer token the CA also accepts; the namespace in the node id must be the token's.
 */
export class XdsServer {
  private snapshot: Snapshot = new Map();
  private aliases = new Map<string, ServedResource>();
  private readonly streams = new Set<Stream>();
  private nextId = 0;
  private version = 0;
  readonly stats: XdsServerStats = { streams: 0, pushes: 0, acks: 0, nacks: [], initialVersions: [] };

  constructor(private readonly o: XdsServerOptions) {}

  /** grpc-js service definition + handler, to be added to the control plane's server. */
  service(): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
    const c = this.o.codec;
    const definition: ServiceDefinition = {
      DeltaAggregatedResources: {
        path: DELTA_ADS_PATH,
        requestStream: true,
        responseStream: true,
        requestSerialize: c.encodeRequest,
        requestDeserialize: c.decodeRequest,
        responseSerialize: c.encodeResponse,
        responseDeserialize: c.decodeResponse,
        originalName: 'deltaAggregatedResources',
      },
    };
    return { definition, implementation: { DeltaAggregatedResources: (call: ServerDuplexStream<PbDeltaRequest, PbDeltaResponse>) => this.accept(call) } };
  }

  /** Replaces what is served and pushes each stream the delta of what it subscribed to. */
  update(next: Snapshot): void {
    this.snapshot = next;
    this.version++;
    const aliases = new Map<string, ServedResource>();
    for (const byName of next.values()) for (const r of byName.values()) for (const a of r.aliases) aliases.set(a, r);
    this.aliases = aliases;
    for (const s of this.streams) for (const [t, sub] of s.subs) this.push(s, t, sub, null);
  }

  /** Open streams, for /config_dump-style inspection and tests. */
  dump(): unknown {
    return {
      version: this.version,
      streams: [...this.streams].map((s) => ({
        id: s.id,
        caller: s.who,
        node: s.node,
        types: Object.fromEntries([...s.subs].map(([t, sub]) => [t, { wildcard: sub.wildcard, names: [...sub.names], held: sub.held.size, lastAck: sub.lastAck, lastNack: sub.lastNack }])),
      })),
    };
  }

  /** Ends every stream (server shutdown): clients see the stream end and reconnect. */
  closeStreams(): void {
    for (const s of this.streams) s.call.end();
    this.streams.clear();
  }

  private accept(call: ServerDuplexStream<PbDeltaRequest, PbDeltaResponse>): void {
    const token = bearerToken(call.metadata.get('authorization'));
    const caller = token === null ? undefined : this.o.callers.get(token);
    if (!caller) {
      const details = token === null ? 'missing bearer token: send metadata "authorization: Bearer <token>" with a token listed in CA_TOKENS' : 'unknown bearer token: it is not listed in CA_TOKENS';
      this.o.logger.warn({ code: 'UNAUTHENTICATED', peer: call.getPeer(), err: details }, 'refused xDS stream');
      call.emit('error', { code: status.UNAUTHENTICATED, details });
      return;
    }
    const s: Stream = { id: ++this.nextId, who: `${caller.namespace}/${caller.serviceAccount}${caller.node ? `@${caller.node}` : ''}`, call, node: '', subs: new Map(), nonces: 0 };
    this.streams.add(s);
    this.stats.streams++;
    call.on('data', (req: PbDeltaRequest) => this.onRequest(s, caller, req));
    call.on('error', () => this.streams.delete(s));
    call.on('cancelled', () => this.streams.delete(s));
    call.on('end', () => {
      this.streams.delete(s);
      call.end();
    });
  }

  private onRequest(s: Stream, caller: Caller, req: PbDeltaRequest): void {
    if (req.node && !this.checkNode(s, caller, req.node.id)) return;
    const t = req.type_url as XdsTypeUrl;
    if (!(XDS_TYPES as readonly string[]).includes(t)) {
      this.o.logger.warn({ stream: s.id, type_url: req.type_url }, 'xDS request for an unsupported type; ignored');
      return;
    }
    let sub = s.subs.get(t);
    if (!sub) {
      const subscribe = req.resource_names_subscribe ?? [];
      const unsubscribe = req.resource_names_unsubscribe ?? [];
      // ztunnel's on-demand start subscribes and unsubscribes `*` in one message.
      const onDemand = subscribe.includes('*') && unsubscribe.includes('*');
      const explicit = subscribe.filter((n) => n !== '*');
      const held = new Map(Object.entries(req.initial_resource_versions ?? {}));
      const wildcard = !onDemand && explicit.length === 0;
      sub = { wildcard, names: new Set(wildcard ? [] : [...explicit, ...held.keys()]), held, lastAck: null, lastNack: null };
      s.subs.set(t, sub);
      this.stats.initialVersions.push({ typeUrl: t, count: held.size });
      this.o.logger.info({ stream: s.id, caller: s.who, node: s.node, type_url: t, wildcard, known: held.size }, 'xDS subscription');
      this.push(s, t, sub, null, true);
      return;
    }
    if (req.response_nonce) {
      if (req.error_detail && req.error_detail.message) {
        sub.lastNack = { nonce: req.response_nonce, error: req.error_detail.message };
        this.stats.nacks.push({ node: s.node, typeUrl: t, error: req.error_detail.message });
        this.o.logger.warn({ stream: s.id, node: s.node, type_url: t, nonce: req.response_nonce, error: req.error_detail.message }, 'xDS NACK');
      } else {
        sub.lastAck = req.response_nonce;
        this.stats.acks++;
      }
    }
    for (const n of req.resource_names_unsubscribe ?? []) sub.names.delete(n);
    const added = (req.resource_names_subscribe ?? []).filter((n) => n !== '*');
    if (added.length > 0 && !sub.wildcard) {
      for (const n of added) sub.names.add(n);
      // A subscribed name is always answered, even when the client holds it already.
      this.push(s, t, sub, new Set(added));
    }
  }

  /**
   * istiod's rule: the proxy's namespace (the last part of its node id,
   * `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`) must be the token's namespace.
   */
  private checkNode(s: Stream, caller: Caller, id: string): boolean {
    const parts = id.split('~');
    const ns = parts.length === 4 ? (parts[3] as string).split('.')[0] : undefined;
    let refusal: { code: status; details: string } | null = null;
    if (!ns) refusal = { code: status.INVALID_ARGUMENT, details: `node id ${JSON.stringify(id)} is not <type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local` };
    else if (ns !== caller.namespace) refusal = { code: status.PERMISSION_DENIED, details: `node id namespace ${JSON.stringify(ns)} does not match the token's namespace ${JSON.stringify(caller.namespace)} (set POD_NAMESPACE)` };
    if (refusal) {
      this.o.logger.warn({ stream: s.id, caller: s.who, node: id, code: status[refusal.code], err: refusal.details }, 'refused xDS stream');
      this.streams.delete(s);
      s.call.emit('error', refusal);
      return false;
    }
    s.node = id;
    return true;
  }

  /**
   * What `sub` should hold now: name → resource. On-demand names resolve through aliases,
   * and a service asked for brings its endpoint workloads (by uid): a client that asked for
   * a VIP can then pick an endpoint without asking for each one.
   */
  private desired(t: XdsTypeUrl, sub: Subscription): ReadonlyMap<string, ServedResource> {
    const all = this.snapshot.get(t) ?? new Map<string, ServedResource>();
    if (sub.wildcard) return all;
    const out = new Map<string, ServedResource>();
    for (const n of sub.names) {
      const r = all.get(n) ?? this.aliases.get(n);
      if (!r || all.get(r.name) !== r) continue;
      out.set(n, r);
      for (const uid of r.related) {
        const e = all.get(uid);
        if (e) out.set(uid, e);
      }
    }
    return out;
  }

  /**
   * Sends the difference between what the client holds and what it should hold. `force`
   * names are answered even when unchanged (or removed when unknown); `always` sends a
   * response even if empty (the answer to a type's first request).
   */
  private push(s: Stream, t: XdsTypeUrl, sub: Subscription, force: Set<string> | null, always = false): void {
    const want = this.desired(t, sub);
    const resources: PbResource[] = [];
    const removed: string[] = [];
    for (const [name, r] of want) {
      if (sub.held.get(name) === r.version && !force?.has(name)) continue;
      resources.push(toPbResource(t, r, name));
      sub.held.set(name, r.version);
    }
    for (const name of [...sub.held.keys()]) {
      if (want.has(name)) continue;
      sub.held.delete(name);
      removed.push(name);
    }
    for (const name of force ?? []) if (!want.has(name) && !removed.includes(name)) removed.push(name);
    if (resources.length === 0 && removed.length === 0 && !always) return;
    const nonce = `${s.id}-${++s.nonces}`;
    this.stats.pushes++;
    s.call.write({ system_version_info: String(this.version), resources, type_url: t, removed_resources: removed, nonce });
    this.o.logger.debug({ stream: s.id, type_url: t, nonce, resources: resources.length, removed: removed.length }, 'xDS push');
  }
}
