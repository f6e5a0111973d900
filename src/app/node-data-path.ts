import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NodeConfig } from '../config/node-config';
import type { CertificateSource } from '../identity/types';
import { workloadIdentity } from '../identity/spiffe';
import type { Capture } from '../native/capture';
import type { OrigSrcMode } from '../native/orig-src';
import { authorizeWithState } from '../policy/authorize';
import { reauthorizationScope } from '../policy/reauthorize';
import { createDryRunReporter } from '../proxy/dry-run';
import type { AcceptInfo } from '../proxy/listener-manager';
import { findLocalWorkload } from '../proxy/local-source';
import { NodeProxy, type ListenerFacts, type NodeProxyAddrs } from '../proxy/node-proxy';
import { createNodeTransport, nodeTcpTuning, type NodeTransport } from '../proxy/node-transport';
import { createInboundResolver, createOutboundRouter } from '../proxy/routing';
import { peersToEvict } from '../state/change';
import type { DemandLookup } from '../state/demand';
import type { StateChange, StateView } from '../state/view';
import { Telemetry } from '../telemetry/telemetry';
import type { PodSocketSource } from '../transport/dial';
import { createSplicer } from '../transport/splice-outcome';
import type { Clock } from '../util/clock';

/** What one data-path thread is built from (the main thread's or a worker thread's own pieces). */
export interface DataPathDeps {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  readonly state: StateView;
  readonly certs: CertificateSource;
  readonly capture: Capture;
  readonly origSrc: OrigSrcMode;
  readonly demand: DemandLookup | null;
  readonly addrs: NodeProxyAddrs;
  readonly podSockets?: PodSocketSource;
  /** A worker thread binds no listener: what its data path asks of listeners comes from the main thread. */
  readonly listenerFacts?: ListenerFacts;
  /** The main thread with worker threads: gives an accepted socket away (true) or keeps it (false). */
  readonly handOff?: (socket: Socket, info: AcceptInfo) => boolean;
  readonly onListenersChanged?: () => void;
  /** The main thread with the addon: its kept sockets are re-adopted for reused read buffers (see NodeProxyOptions.dupFd). */
  readonly dupFd?: (fd: number) => number;
}

/** One thread's data path: connection records, the HBONE transport, the proxy, and how it follows the state. */
export interface DataPath {
  readonly telemetry: Telemetry;
  readonly transport: NodeTransport;
  readonly proxy: NodeProxy;
  /** Metric series, pooled connections and live connections follow a state change. */
  followChange(change: StateChange): void;
}

/**
 * Builds the node's data path the same way on every data-path thread: the main thread
 * (which also binds the listeners) and each worker thread (which gets accepted sockets from
 * it). Each has its own telemetry, HBONE pool and server, so no socket or pool is shared
 * between threads.
 */
export function buildDataPath(d: DataPathDeps): DataPath {
  const c = d.config;
  const network = c.network;
  const telemetry = new Telemetry({ registry: d.registry, logger: d.logger, clock: d.clock, accessLogUpdateIntervalMs: c.accessLogUpdateInterval });
  // Late-bound: the proxy (and its listener manager) is built after the transport it uses.
  let proxy: NodeProxy | null = null;
  const facts = (): ListenerFacts => proxy!.listenerFacts;
  const illegalPorts = (): ReadonlySet<number> => facts().illegalPorts();
  const splice = createSplicer(c.idleTimeout);
  const transport = createNodeTransport({
    config: c,
    logger: d.logger,
    clock: d.clock,
    certs: d.certs,
    capture: d.capture,
    onConnect: (req) => void proxy!.inboundHandler.onConnect(req),
    onFailure: (reason) => telemetry.metrics.earlyFailure('inbound', reason),
    resolveCert: async (localAddr) => {
      const w = findLocalWorkload(d.state, network, c.nodeName, localAddr.ip);
      return w ? d.certs.fetchCertificate(workloadIdentity(w), 'realtime') : undefined;
    },
  });
  const demand = d.demand ? { demand: d.demand } : {};
  proxy = new NodeProxy({
    logger: d.logger,
    state: d.state,
    nodeName: c.nodeName,
    addrs: d.addrs,
    ...(d.podSockets ? { podSockets: d.podSockets } : {}),
    ...(d.listenerFacts ? { listenerFacts: d.listenerFacts } : {}),
    ...(d.handOff ? { handOff: d.handOff } : {}),
    ...(d.onListenersChanged ? { onListenersChanged: d.onListenersChanged } : {}),
    ...(d.dupFd ? { dupFd: d.dupFd } : {}),
    capture: d.capture,
    telemetry,
    hboneClient: transport.client,
    hboneServer: transport.server,
    tcp: nodeTcpTuning(c),
    outbound: {
      settings: { network, nodeName: c.nodeName, connectTimeoutMs: c.connectTimeout, localWorkloadWaitMs: c.localWorkloadWait, socksHandshakeTimeoutMs: c.headersTimeout, clusterDomain: c.clusterDomain },
      certs: d.certs,
      route: createOutboundRouter(d.state, network, illegalPorts),
      ...demand,
      splice,
      prepareDial: transport.prepareDial,
    },
    inbound: {
      settings: { network, nodeName: c.nodeName, connectTimeoutMs: c.connectTimeout, origSrc: d.origSrc.enabled, localhostAppTunnel: c.localhostAppTunnel },
      resolveTarget: createInboundResolver(d.state, network, illegalPorts),
      authorize: (ctx) => authorizeWithState(d.state, ctx),
      reportDryRun: createDryRunReporter(d.registry, d.logger),
      ...demand,
      splice,
      prepareDial: transport.prepareDial,
    },
  });
  const built = proxy;
  return {
    telemetry,
    transport,
    proxy: built,
    followChange: (change) => {
      for (const w of change.workloadsRemoved) telemetry.metrics.removeWorkload(w);
      // Only peers whose identity or address moved lose their pooled connections.
      for (const uid of peersToEvict(change)) transport.client.evictPeer(uid);
      // Only connections to destinations a changed policy selects are re-authorized.
      const scope = reauthorizationScope(change, d.state);
      if (!scope) return;
      const r = telemetry.tracker.recheckPolicies((ctx) => ctx.dstWorkload !== null && scope(ctx.dstWorkload));
      d.logger.debug({ ...r, version: change.version, policies: change.changedPolicies.map((p) => p.key) }, 'live connections re-authorized after a state change');
      if (r.closed > 0) d.logger.info({ closed: r.closed, version: change.version }, 'policy change closed connections that are no longer allowed');
    },
  };
}
