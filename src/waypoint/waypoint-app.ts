import { RoleLifecycle } from '../app/role-lifecycle';
import { createServer, type Server, type Socket } from 'node:net';
import type { DestinationStream, Logger } from 'pino';
import type { Registry } from 'prom-client';
import { closeServer, listen } from '../admin/listen';
import { sendJson } from '../admin/http-util';
import type { Component, BoundListener } from '../app/component';
import type { Runtime, RuntimeAddresses } from '../app/runtime';
import { pickDefined, roleCore, transportTuning } from '../app/role-settings';
import { WAYPOINT_KEYS } from '../config/keys-waypoint';
import type { WaypointConfig } from '../config/waypoint-config';
import { createIdentityManager } from '../identity/create';
import type { CertManager } from '../identity/cert-manager';
import { SpiffeId } from '../identity/spiffe';
import { createStateMetrics } from '../metrics/state-metrics';
import { registerPoolMetrics } from '../metrics/pool-metrics';
import { stateDump } from '../state/dump';
import { LocalConfigSource } from '../state/local-source';
import type { StateUpdater } from '../state/proxy-state';
import type { StateChange, StateView } from '../state/view';
import { RequestMetrics } from '../telemetry/request-metrics';
import { Telemetry } from '../telemetry/telemetry';
import { createHboneTransport, type HboneTransport } from '../transport/hbone-transport';
import { createSplicer } from '../transport/splice-outcome';
import { systemClock, type Clock } from '../util/clock';
import { createXdsSource } from '../xds/create';
import type { XdsSource } from '../xds/xds-source';
import { canonicalIp, isLoopback } from '../util/ip';
import { makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import { declaredProtocol } from './config/service-ports';
import { L7ConfigSource } from './config/source';
import { explainRequestHandler, l7Dump } from './explain';
import { HttpProxy } from './http-proxy';
import { RequestMirror } from './mirror';
import { WaypointInbound } from './inbound';
import { Upstreams } from './upstream';
import { RequestAuth } from './authn/request-authn';
import { RequestTracer } from '../telemetry/tracing/request-tracer';
import { TrafficManager } from './traffic/manager';

export interface WaypointAppOptions {
  readonly config: WaypointConfig;
  readonly logDestination?: DestinationStream;
  readonly clock?: Clock;
  readonly processMetrics?: boolean;
  readonly onStopped?: () => void;
  /** [0,1) source for weighted routes and load balancing (tests inject a seeded one). */
  readonly random?: () => number;
}

const HBONE_PORT = 15008;
/** One mirrored copy may lag the primary by this much body before it is dropped: enough for ordinary request bodies, bounded under load. */
const MIRROR_MAX_BUFFERED_BYTES = 256 * 1024;
/** A mirror that has not answered within this is dropped, so slow mirrors cannot pile up connections. */
const MIRROR_DEADLINE_MS = 30_000;

/**
 * Composition root of the waypoint: builds its registry, logger, state (same sources as
 * the node proxy: xDS and/or the local file), its own certificate (spiffe://<td>/ns/<POD_NAMESPACE>/sa/<SERVICE_ACCOUNT>
 * from the CA, never impersonated), the HBONE transport, the L7 config source and the
 * HTTP proxy, and wires them. Readiness: "state", "certificates" (its own identity) and
 * "listeners".
 */
export class WaypointApp {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly runtime: Runtime;
  readonly state: StateView;
  readonly updater: StateUpdater;
  readonly certs: CertManager;
  readonly identity: SpiffeId;
  readonly telemetry: Telemetry;
  readonly requestMetrics: RequestMetrics;
  readonly l7: L7ConfigSource;
  readonly http: HttpProxy;
  readonly upstreams: Upstreams;
  /** istiod's (or the dev control plane's) delta xDS, or null without XDS_ADDRESS. */
  readonly xds: XdsSource | null;
  readonly authn: RequestAuth;
  private tracer: RequestTracer | null = null;
  readonly traffic: TrafficManager;
  private readonly transport: HboneTransport;
  private readonly inbound: WaypointInbound;
  private readonly listener: Server;
  private bound: SocketAddr | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly lifecycle: RoleLifecycle;

  constructor(readonly opts: WaypointAppOptions) {
    const c = opts.config;
    const clock = opts.clock ?? systemClock;
    const random = opts.random ?? Math.random;
    this.identity = SpiffeId.of(c.trustDomain, c.podNamespace, c.serviceAccount);
    const core = roleCore({ keys: WAYPOINT_KEYS, config: c, logBase: { component: 'waypoint', waypoint: `${c.podNamespace}/${c.waypointName}` }, metricsComponent: 'waypoint', ...pickDefined(opts) });
    ({ logger: this.logger, registry: this.registry, runtime: this.runtime, updater: this.updater } = core);
    const { state: stateReady, certificates: certsReady, listeners: listenersReady } = core.ready;
    this.state = this.updater.view;
    this.lifecycle = new RoleLifecycle(this.runtime, this.state, (ch) => this.onStateChange(ch));
    const localConfig = new LocalConfigSource({
      path: c.localXdsPath || null,
      inline: c.localXds || null,
      updater: this.updater,
      logger: this.logger.child({ scope: 'state' }),
      metrics: createStateMetrics(this.registry, this.state),
    });
    // The node's sources: istiod's xDS (XDS_ADDRESS) and/or the local file, each writing its own share of the state.
    this.xds = createXdsSource({ config: c, updater: this.updater, registry: this.registry, logger: this.logger.child({ scope: 'xds' }), clock });
    const sources = [...(c.localXdsPath || c.localXds ? [localConfig.ready] : []), ...(this.xds ? [this.xds.ready] : [])];
    if (sources.length === 0) this.logger.warn('no XDS_ADDRESS, LOCAL_XDS_PATH or LOCAL_XDS: the waypoint knows no services and serves nothing');
    void Promise.all(sources).then(stateReady);
    this.certs = createIdentityManager({ config: c, logger: this.logger.child({ scope: 'identity' }), registry: this.registry, clock, mode: 'waypoint' });
    this.telemetry = new Telemetry({ registry: this.registry, logger: this.logger, clock, accessLogUpdateIntervalMs: 0 });
    this.requestMetrics = new RequestMetrics(this.registry);
    const waypoint = { name: c.waypointName, namespace: c.podNamespace };
    this.authn = new RequestAuth({ logger: this.logger.child({ scope: 'authn' }), clock, registry: this.registry, refreshIntervalMs: c.jwksRefreshInterval, waypoint });
    this.l7 = new L7ConfigSource({ path: c.waypointConfigPath, logger: this.logger.child({ scope: 'l7_config' }), registry: this.registry, onApply: (cfg) => this.authn.onConfig(cfg) });

    const instanceIp = c.instanceIp ? canonicalIp(c.instanceIp) : c.inboundAddr.host && c.inboundAddr.host !== '::' && c.inboundAddr.host !== '0.0.0.0' ? c.inboundAddr.host : null;
    this.transport = createHboneTransport({
      logger: this.logger.child({ scope: 'hbone' }),
      clock,
      certs: this.certs,
      resolveCert: () => this.certs.fetchCertificate(this.identity, 'realtime'),
      onConnect: (req) => this.inbound.onConnect(req),
      onFailure: (reason) => this.telemetry.metrics.earlyFailure('inbound', reason),
      ...transportTuning(c),
      socket: { noDelay: true, keepalive: c.keepaliveEnabled, keepaliveTime: c.keepaliveTime },
    });
    this.upstreams = new Upstreams({
      hbone: this.transport.client,
      identity: this.identity,
      // On a loopback mesh the destination node proxy attributes connections by source IP.
      localAddress: instanceIp !== null && isLoopback(instanceIp) ? instanceIp : undefined,
      hbonePort: HBONE_PORT,
      connectTimeoutMs: c.connectTimeout,
      prepareDial: this.transport.prepareDial,
    });
    const mirror = new RequestMirror({
      state: this.state,
      network: c.network,
      clusterDomain: c.clusterDomain,
      upstreams: this.upstreams,
      registry: this.registry,
      logger: this.logger.child({ scope: 'mirror' }),
      random,
      maxBufferedBytes: MIRROR_MAX_BUFFERED_BYTES,
      deadlineMs: MIRROR_DEADLINE_MS,
    });
    this.traffic = new TrafficManager({ state: this.state, config: () => this.l7.config, network: c.network, registry: this.registry, logger: this.logger.child({ scope: 'traffic' }), random, now: () => performance.now() });
    this.http = new HttpProxy({ state: this.state, config: () => this.l7.config, waypoint, network: c.network, clusterDomain: c.clusterDomain, upstreams: this.upstreams, mirror, metrics: this.requestMetrics, logger: this.logger, random, authn: this.authn, tracer: () => this.tracer, traffic: this.traffic });
    this.inbound = new WaypointInbound({
      state: this.state,
      network: c.network,
      instanceIp,
      waypointFor: c.waypointFor,
      ownPorts: new Set([HBONE_PORT, c.inboundAddr.port]),
      http: this.http,
      upstreams: this.upstreams,
      telemetry: this.telemetry,
      splice: createSplicer(0),
      detectTimeoutMs: c.protocolDetectionTimeout,
      random,
      logger: this.logger,
      declaredProtocol: (ns, name, port) => declaredProtocol(this.l7.config, ns, name, port),
    });
    this.listener = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));

    this.runtime.add(localConfig);
    if (this.xds) this.runtime.add(this.xds);
    this.runtime.add(this.l7);
    this.runtime.add({ name: 'jwks', start: () => Promise.resolve(), close: () => Promise.resolve(this.authn.close()), destroy: () => this.authn.close(), dump: () => this.authn.jwks.dump() });
    if (c.tracesEndpoint) this.runtime.add(this.tracing(c.tracesEndpoint));
    this.runtime.add({ name: 'certificates', start: () => this.certs.start(), close: () => this.certs.close(), destroy: () => this.certs.destroy(), dump: () => this.certs.dump() });
    this.runtime.add(this.dataPath(listenersReady));
    void this.certs.waitForIdentities([this.identity]).then(certsReady);
    this.certs.syncLocalIdentities([this.identity]);
    this.runtime.admin.addDumpSection('identity', () => ({ identity: this.identity.toString(), waypoint, waypointFor: c.waypointFor, instanceIp }));
    this.runtime.admin.addDumpSection('state', () => stateDump(this.state));
    this.runtime.admin.addDumpSection('l7', () => l7Dump(this.state, this.l7.config, waypoint, c.network, instanceIp));
    this.runtime.admin.addDumpSection('traffic', () => this.traffic.dump());
    this.runtime.admin.addDumpSection('upstreams', () => this.upstreams.dump());
    this.runtime.admin.addDumpSection('pools', () => this.transport.client.dump());
    this.runtime.admin.addDumpSection('hbone_server', () => this.transport.server.dump());
    registerPoolMetrics(this.registry, this.transport.client);
    this.runtime.admin.addHandler(
      '/debug/explain',
      'which route, backend and policy decide an HTTP request: ?dst=<ip:port>&path=/x[&method=GET][&host=h][&header=name:value][&src=<spiffe id>]',
      explainRequestHandler(() => ({ state: this.state, config: this.l7.config, waypoint, network: c.network, clusterDomain: c.clusterDomain, authn: this.authn }), (res, code, body) => sendJson(res, code, body)),
    );
  }

  /**
   * Request tracing (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): the SDK is loaded and the exporter
   * built at start, before the listener binds; close exports what is still batched.
   */
  private tracing(endpoint: string): Component {
    const c = this.opts.config;
    return {
      name: 'tracing',
      start: async () => {
        this.tracer = await RequestTracer.create({
          endpoint,
          serviceName: `${c.waypointName}.${c.podNamespace}`,
          resource: { 'k8s.namespace.name': c.podNamespace, 'service.namespace': c.podNamespace, ...(c.instanceIp ? { 'k8s.pod.ip': c.instanceIp } : {}) },
          samplingPercent: c.tracingSampling,
          logger: this.logger.child({ scope: 'tracing' }),
          exportDelayMs: c.traceExportDelay,
        });
      },
      close: async () => {
        const t = this.tracer;
        this.tracer = null;
        await t?.shutdown().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'tracing: final export failed'));
      },
      destroy: () => {
        const t = this.tracer;
        this.tracer = null;
        void t?.shutdown().catch(() => undefined);
      },
    };
  }

  /** The HBONE listener and everything behind it, as one runtime component. */
  private dataPath(ready: () => void): Component {
    const c = this.opts.config;
    return {
      name: 'waypoint',
      start: async () => {
        this.bound = await listen(this.listener, c.inboundAddr, 'inbound');
        ready();
      },
      close: async () => {
        await closeServer(this.listener);
        await this.transport.server.close();
        this.http.h1.closeIdleConnections();
        this.upstreams.close();
        this.traffic.close();
        await this.transport.client.close();
      },
      destroy: () => {
        this.listener.close();
        for (const s of this.sockets) s.destroy();
        this.transport.server.destroy();
        this.upstreams.destroy();
        this.traffic.close();
        this.transport.client.destroy();
      },
      listeners: (): BoundListener[] => (this.bound ? [{ name: 'inbound', address: this.bound }] : []),
    };
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const ip = canonicalIp(socket.localAddress ?? '') ?? socket.localAddress ?? '0.0.0.0';
    this.transport.server.handleSocket(socket, makeSocketAddr(ip, socket.localPort ?? 0));
  }

  private onStateChange(change: StateChange): void {
    for (const w of change.workloadsRemoved) {
      this.requestMetrics.removeWorkload(w);
      this.telemetry.metrics.removeWorkload(w);
    }
    for (const w of [...change.workloadsRemoved, ...change.workloadsUpdated]) {
      this.transport.client.evictPeer(w.uid);
      this.upstreams.evict(w.uid);
    }
  }

  async start(): Promise<RuntimeAddresses> {
    return this.lifecycle.start();
  }

  close(): Promise<void> {
    return this.lifecycle.close();
  }

  destroy(): void {
    this.lifecycle.destroy();
  }
}
