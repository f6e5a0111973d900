import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { BoundListener } from '../app/component';
import type { AcceptInfo, ListenerName } from '../proxy/listener-manager';
import type { Workload } from '../state/types';
import { makeSocketAddr } from '../util/socket-addr';
import type { SocketFactory } from '../transport/dial';
import { applySocketOptions, type TcpTuning } from '../transport/socket-opts';
import type { PodNetns } from './pod-netns';
import type { RunningPod } from './workload-manager';
import type { ZdsWorkloadInfo } from './zds-codec';

/** The in-pod listeners: name and port (15001, 15006, 15008 by default). */
export interface PodListenerSpec {
  readonly name: Extract<ListenerName, 'outbound' | 'inbound_plaintext' | 'inbound'>;
  readonly port: number;
}

export interface PodListenersOptions {
  readonly logger: Logger;
  readonly specs: readonly PodListenerSpec[];
  /** INPOD_PORT_REUSE: SO_REUSEPORT, so a new node proxy can bind beside this one. */
  readonly reusePort: boolean;
  /** `::` (dual stack, as ztunnel) or `0.0.0.0` when IPv6 is off. */
  readonly host: string;
  /** The node proxy's accept path; takes ownership of the socket. */
  readonly onSocket: (socket: Socket, info: AcceptInfo) => void;
  /** NODELAY + keepalive on every socket the pod dials from (the node's KEEPALIVE_*). */
  readonly tcp: TcpTuning;
}

/**
 * One enrolled pod: its listeners inside its namespace and every socket that belongs to it
 * (accepted there, or dialled from there). Owns the namespace descriptor.
 */
class PodProxy implements RunningPod {
  readonly servers: { readonly name: ListenerName; readonly server: Server; readonly port: number }[] = [];
  private readonly sockets = new Set<Socket>();
  private stopped = false;
  readonly dial: SocketFactory;

  constructor(
    private readonly owner: PodListeners,
    readonly uid: string,
    readonly info: ZdsWorkloadInfo,
    readonly netns: PodNetns,
  ) {
    this.dial = (family, localAddress, transparent) => {
      const s = netns.tcpSocket(family, localAddress, transparent);
      applySocketOptions(s, owner.tcp);
      return this.track(s);
    };
  }

  track(s: Socket): Socket {
    if (this.stopped) {
      s.destroy();
      return s;
    }
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  /** Graceful: stop accepting (shutdown drain); live connections finish on their own. */
  closeListeners(): Promise<void> {
    return Promise.all(this.servers.map((l) => new Promise<void>((r) => l.server.close(() => r())))).then(() => undefined);
  }

  /** Immediate (ZDS del / reconcile): the pod is gone, so are its connections. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const l of this.servers) l.server.close();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.netns.close();
    this.owner.forget(this);
  }
}

/**
 * The in-pod listener mode: per enrolled pod, the proxy's listeners are opened INSIDE the
 * pod's network namespace (`[::]:15001`, `[::]:15006`, `[::]:15008`), and the pod's dials
 * (to apps and peers) use sockets made there with the packet mark. This is the PodStarter
 * of the WorkloadManager.
 */
export class PodListeners {
  private readonly pods = new Map<string, PodProxy>();

  constructor(private readonly o: PodListenersOptions) {}

  get tcp(): TcpTuning {
    return this.o.tcp;
  }

  readonly start = async (uid: string, info: ZdsWorkloadInfo, netns: PodNetns): Promise<RunningPod> => {
    const pod = new PodProxy(this, uid, info, netns);
    if (this.o.reusePort) this.migrateRequests(netns, uid);
    try {
      for (const spec of this.o.specs) {
        const server = await netns.listenTcp(this.o.host, spec.port, this.o.reusePort, { allowHalfOpen: true, pauseOnConnect: spec.name === 'inbound' });
        const bound = makeSocketAddr(this.o.host, spec.port);
        const info2: AcceptInfo = { listener: spec.name, bound, workloadUid: null, pod: uid };
        server.on('connection', (s: Socket) => this.o.onSocket(pod.track(s), info2));
        server.on('error', (err) => this.o.logger.error({ err, listener: spec.name, pod: uid }, 'in-pod listener error'));
        pod.servers.push({ name: spec.name, server, port: spec.port });
      }
    } catch (err) {
      // Leave the namespace descriptor to the caller (it keeps the pod pending and retries).
      for (const l of pod.servers) l.server.close();
      throw err;
    }
    this.pods.set(uid, pod);
    this.o.logger.debug({ pod: uid, name: info.name, namespace: info.namespace, netns: netns.inode }, 'in-pod listeners bound');
    return pod;
  };

  /**
   * With SO_REUSEPORT, connections already in a closing listener's accept queue would be
   * reset when the old node proxy stops; tcp_migrate_req (per namespace) moves them to the
   * new proxy's listener instead, so a rolling update refuses no connection.
   */
  private migrateRequests(netns: PodNetns, uid: string): void {
    try {
      netns.sysctl('net/ipv4/tcp_migrate_req', '1');
    } catch (err) {
      this.o.logger.warn({ pod: uid, error: (err as Error).message }, 'cannot enable tcp_migrate_req in the pod: a rolling update may reset connections queued on the old listener');
    }
  }

  /** The dial factory of the pod behind an in-pod listener. */
  socketsForPod(uid: string): SocketFactory | undefined {
    return this.pods.get(uid)?.dial;
  }

  /**
   * The dial factory of the pod that runs a workload (inbound: the app is dialled from its
   * own pod). Matched by uid (the agent's uid is the workload uid), else by name/namespace.
   */
  socketsForWorkload(w: Workload): SocketFactory | undefined {
    return podOfWorkload(this.pods, w, (p) => p.info)?.dial;
  }

  /** Every enrolled pod with its namespace. */
  podNamespaces(): { uid: string; info: ZdsWorkloadInfo; netns: PodNetns }[] {
    return [...this.pods.values()].map((p) => ({ uid: p.uid, info: p.info, netns: p.netns }));
  }

  /** The pods' workload infos (the certificate fallback when the state does not know a pod yet). */
  podInfos(): Map<string, ZdsWorkloadInfo> {
    return new Map([...this.pods.values()].map((p) => [p.uid, p.info]));
  }

  listeners(): BoundListener[] {
    const out: BoundListener[] = [];
    for (const p of this.pods.values()) for (const l of p.servers) out.push({ name: l.name, address: makeSocketAddr(this.o.host, l.port), workload: p.uid });
    return out;
  }

  /** Shutdown: every pod stops accepting; connections drain through the node proxy's tracker. */
  async close(): Promise<void> {
    await Promise.all([...this.pods.values()].map((p) => p.closeListeners()));
  }

  destroy(): void {
    for (const p of [...this.pods.values()]) p.stop();
  }

  forget(p: PodProxy): void {
    if (this.pods.get(p.uid) === p) this.pods.delete(p.uid);
  }
}

/** The pod that runs a workload: by uid (the agent's uid is the workload uid), else by name and namespace. */
export function podOfWorkload<P>(pods: ReadonlyMap<string, P>, w: Workload, info: (p: P) => { readonly name: string; readonly namespace: string }): P | undefined {
  const byUid = pods.get(w.uid);
  if (byUid) return byUid;
  for (const p of pods.values()) {
    const i = info(p);
    if (i.name === w.name && i.namespace === w.namespace) return p;
  }
  return undefined;
}
