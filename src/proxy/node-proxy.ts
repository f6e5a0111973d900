import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { BoundListener, Component } from '../app/component';
import { makeSocketAddr, type ListenAddr, type SocketAddr } from '../util/socket-addr';
import { resolveDestination } from '../native/orig-dst';
import type { Capture } from '../native/capture';
import type { StateView } from '../state/view';
import type { HboneClient } from '../transport/hbone/types';
import { InboundHboneHandler } from './inbound-handler';
import { InboundPlaintextConnection } from './inbound-plaintext';
import type { InboundDeps } from './inbound-types';
import { ListenerManager, type AcceptInfo, type ListenerName } from './listener-manager';
import { OutboundConnection } from './outbound';
import type { PodSocketSource } from '../transport/dial';
import type { OutboundDeps } from './outbound-types';
import { OutboundHeaders } from './outbound-headers';
import type { Telemetry } from '../telemetry/telemetry';
import { applySocketOptions, type TcpTuning } from '../transport/socket-opts';
import { readoptSocket } from '../transport/splice-readbuf';

/** What the node proxy needs from the HBONE server: hand it an accepted TCP socket. */
export interface HboneSocketServer {
  handleSocket(socket: Socket, localAddr: SocketAddr): void;
  close(): Promise<void>;
  destroy(): void;
}

/** What the data path asks of the listeners: ztunnel's illegal ports and "is this one of ours" (self-calls). */
export interface ListenerFacts {
  illegalPorts(): ReadonlySet<number>;
  isOwnAddress(a: SocketAddr): boolean;
}

export interface NodeProxyAddrs {
  readonly outbound: ListenAddr | null;
  readonly inboundPlaintext: ListenAddr | null;
  readonly inbound: ListenAddr | null;
  readonly socks5: ListenAddr | null;
}

export interface NodeProxyOptions {
  readonly logger: Logger;
  readonly state: StateView;
  readonly nodeName: string;
  readonly addrs: NodeProxyAddrs;
  readonly capture: Capture;
  readonly telemetry: Telemetry;
  readonly hboneClient: HboneClient;
  readonly hboneServer: HboneSocketServer;
  /** NODELAY + keepalive for accepted sockets (see accept). */
  readonly tcp: TcpTuning;
  /** Everything but the shared pieces above, built by the composition root. */
  /** In-pod mode: the pods' own sockets (listeners are bound by the in-pod listener set, which hands accepted sockets to accept()). */
  readonly podSockets?: PodSocketSource;
  /** A worker thread binds nothing: the main thread's listener facts stand in for its own. */
  readonly listenerFacts?: ListenerFacts;
  /** Main thread with worker threads: each accepted socket is offered here first; true = given away. */
  readonly handOff?: (socket: Socket, info: AcceptInfo) => boolean;
  /**
   * With the native addon: an accepted plain-TCP socket the main thread keeps is re-adopted
   * through a duplicate descriptor so it reads into reused buffers, as the worker threads'
   * adopted sockets do (`net.Server` takes no `onread`). Not for 15008 (TLS wraps it) nor
   * in-pod sockets (their pod tracks the original).
   */
  readonly dupFd?: (fd: number) => number;
  /** Called after a listener was bound or closed. */
  readonly onListenersChanged?: () => void;
  readonly outbound: Omit<OutboundDeps, 'logger' | 'state' | 'telemetry' | 'capture' | 'hbone' | 'illegalPorts' | 'isOwnAddress' | 'headers'>;
  readonly inbound: Omit<InboundDeps, 'logger' | 'state' | 'telemetry' | 'capture' | 'isOwnAddress'>;
}

/**
 * The node proxy's data path as one component: listeners (per local workload or fixed),
 * the outbound / SOCKS5 / plaintext-inbound connection handlers and the HBONE server hand-off.
 * Drain (ztunnel run_with_drain): close() stops accepting, the HBONE server sends GOAWAY,
 * and it resolves when every live connection finished; destroy() at the deadline
 * force-closes what is left, which records DRAINED.
 */
export class NodeProxy implements Component {
  readonly name = 'proxy';
  readonly listenerManager: ListenerManager;
  readonly inboundHandler: InboundHboneHandler;
  private readonly outboundDeps: OutboundDeps;
  private readonly inboundDeps: InboundDeps;
  /** Accepted sockets not yet closed, so a forced stop reaches the ones still in their early phase. */
  private readonly accepted = new Set<Socket>();
  /** One 'close' listener for every accepted socket (`this` is the socket): no once() wrapper and closure kept per idle connection. */
  private readonly forget: (this: Socket) => void;

  /** The listener facts the data path uses: the injected ones (worker thread) or this proxy's listener manager's. */
  readonly listenerFacts: ListenerFacts;

  constructor(private readonly opts: NodeProxyOptions) {
    const accepted = this.accepted;
    this.forget = function (this: Socket): void {
      accepted.delete(this);
    };
    this.listenerFacts = opts.listenerFacts ?? { illegalPorts: () => this.listenerManager.illegalPorts(), isOwnAddress: (a) => this.listenerManager.isOwnAddress(a) };
    const illegalPorts = (): ReadonlySet<number> => this.listenerFacts.illegalPorts();
    const isOwnAddress = (a: SocketAddr): boolean => this.listenerFacts.isOwnAddress(a);
    this.outboundDeps = { ...opts.outbound, logger: opts.logger, state: opts.state, telemetry: opts.telemetry, capture: opts.capture, hbone: opts.hboneClient, illegalPorts, isOwnAddress, headers: new OutboundHeaders(), ...(opts.podSockets ? { podSockets: opts.podSockets } : {}) };
    this.inboundDeps = { ...opts.inbound, logger: opts.logger, state: opts.state, telemetry: opts.telemetry, capture: opts.capture, isOwnAddress, ...(opts.podSockets ? { podSockets: opts.podSockets } : {}) };
    this.inboundHandler = new InboundHboneHandler(this.inboundDeps);
    const a = opts.addrs;
    this.listenerManager = new ListenerManager({
      logger: opts.logger,
      state: opts.state,
      nodeName: opts.nodeName,
      ...(opts.onListenersChanged ? { onChange: opts.onListenersChanged } : {}),
      specs: [
        { name: 'outbound', addr: a.outbound, onSocket: (s, i) => this.accept(s, i) },
        { name: 'inbound_plaintext', addr: a.inboundPlaintext, onSocket: (s, i) => this.accept(s, i) },
        { name: 'inbound', addr: a.inbound, onSocket: (s, i) => this.accept(s, i) },
        { name: 'socks5', addr: a.socks5, onSocket: (s, i) => this.accept(s, i) },
      ],
    });
  }

  async start(): Promise<void> {
    await this.listenerManager.start();
  }

  listeners(): readonly BoundListener[] {
    return this.listenerManager.listeners();
  }

  /**
   * Stop accepting and send GOAWAY on every inbound HBONE session in the same tick, so peers
   * stop opening streams here at once; then wait only for what is in flight. The client pool
   * closes last: connections accepted just before the drain may still need a stream.
   */
  async close(): Promise<void> {
    await this.listenerManager.close();
    await Promise.all([this.opts.hboneServer.close().catch(() => undefined), this.opts.telemetry.tracker.idle()]);
    await this.opts.hboneClient.close().catch(() => undefined);
    this.opts.telemetry.tracker.close();
  }

  /** Force: every live connection is recorded DRAINED, then sockets and sessions go. */
  destroy(): void {
    this.listenerManager.destroy();
    const n = this.opts.telemetry.tracker.terminateAll('DRAINED', 'force-closed at the drain deadline');
    if (n > 0) this.opts.logger.warn({ connections: n }, 'drain deadline: force-closed live connections');
    for (const s of this.accepted) s.destroy();
    this.opts.hboneServer.destroy();
    this.opts.hboneClient.destroy();
    this.opts.telemetry.tracker.close();
  }

  dump(): unknown {
    return { listeners: this.listenerManager.dump(), liveConnections: this.opts.telemetry.tracker.size };
  }

  /**
   * Every listener's accepted sockets come here (the in-pod listener set calls it too, and a
   * worker thread for the sockets handed to it); takes ownership. App-side sockets (15001, 15006, SOCKS5) get NODELAY and keepalive, as ztunnel's
   * capture listeners set them; an HBONE connection (15008) gets NODELAY only, its liveness
   * is the HTTP/2 PING (HBONE_PING_INTERVAL).
   */
  readonly accept = (given: Socket, info: AcceptInfo): void => {
    if (this.opts.handOff?.(given, info)) return;
    const dupFd = this.opts.dupFd;
    const socket = dupFd && info.listener !== 'inbound' && info.pod === undefined ? (readoptSocket(given, dupFd) ?? given) : given;
    this.accepted.add(socket);
    socket.on('close', this.forget);
    applySocketOptions(socket, info.listener === 'inbound' ? { ...this.opts.tcp, keepalive: false } : this.opts.tcp);
    switch (info.listener as ListenerName) {
      case 'outbound':
        void new OutboundConnection(this.outboundDeps, socket, info, false).run();
        return;
      case 'socks5':
        void new OutboundConnection(this.outboundDeps, socket, info, true).run();
        return;
      case 'inbound_plaintext':
        void new InboundPlaintextConnection(this.inboundDeps, socket, info).run();
        return;
      case 'inbound':
        this.opts.hboneServer.handleSocket(socket, this.inboundLocalAddr(socket, info));
        return;
    }
  };

  /** The address an HBONE connection arrived at: original destination (capture) or local address. */
  private inboundLocalAddr(socket: Socket, info: AcceptInfo): SocketAddr {
    if (info.workloadUid !== null) return info.bound;
    if (info.pod !== undefined && socket.localAddress && socket.localPort) return makeSocketAddr(socket.localAddress, socket.localPort);
    try {
      return resolveDestination(this.opts.capture, socket).addr;
    } catch {
      return socket.localAddress && socket.localPort ? makeSocketAddr(socket.localAddress, socket.localPort) : info.bound;
    }
  }
}
