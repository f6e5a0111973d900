import { networkInterfaces } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { BoundListener, Component } from '../app/component';
import type { StateView } from '../state/view';
import type { Workload } from '../state/types';
import { canonicalIp, isLoopback } from '../util/ip';
import { formatListenAddr, formatSocketAddr, makeSocketAddr, type ListenAddr, type SocketAddr } from '../util/socket-addr';

export type ListenerName = 'outbound' | 'inbound_plaintext' | 'inbound' | 'socks5';

/** Where an accepted socket arrived. */
export interface AcceptInfo {
  readonly listener: ListenerName;
  /** The address the listener is bound to (the workload IP for per-workload listeners). */
  readonly bound: SocketAddr;
  /** The workload the listener serves; null for listeners bound to an explicit host. */
  readonly workloadUid: string | null;
  /** In-pod mode: the pod (ZDS uid) whose network namespace the listener is in. */
  readonly pod?: string;
}

export interface ListenerSpec {
  readonly name: ListenerName;
  /** null = disabled. Host-less (`:15008`) = that port on every local workload IP. */
  readonly addr: ListenAddr | null;
  /** Takes ownership of the socket. */
  readonly onSocket: (socket: Socket, info: AcceptInfo) => void;
}

export interface ListenerManagerOptions {
  readonly logger: Logger;
  readonly state: StateView;
  readonly nodeName: string;
  readonly specs: readonly ListenerSpec[];
  /** Called after a listener was bound or closed (the node's worker threads get the new facts). */
  readonly onChange?: () => void;
}

interface Bound {
  readonly key: string;
  readonly server: Server;
  readonly spec: ListenerSpec;
  readonly address: SocketAddr;
  readonly workloadUid: string | null;
}

/**
 * Binds the proxy listeners. A host-less address means ztunnel's per-pod listener,
 * emulated on loopback: the port on EVERY local workload IP (workloads whose node is
 * NODE_NAME), kept in step with state changes (bind on add, close on remove). A bind
 * failure for one workload is logged and does not stop the others. An address with a host
 * binds exactly that (capture setups). Several node proxies can therefore share a machine,
 * each on its own workloads' loopback IPs.
 */
export class ListenerManager implements Component {
  readonly name = 'listeners';
  private readonly bound = new Map<string, Bound>();
  /** Keys currently being bound, so overlapping syncs do not double-bind. */
  private readonly binding = new Set<string>();
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  private syncing: Promise<void> = Promise.resolve();
  /** Failures per key, so a retry after a state change logs again only when it changes. */
  private readonly failures = new Map<string, string>();

  constructor(private readonly opts: ListenerManagerOptions) {}

  /** Binds fixed listeners (failure is fatal: the operator named that address) and the per-workload ones. */
  async start(): Promise<void> {
    for (const spec of this.opts.specs) {
      if (!spec.addr || spec.addr.host === null) continue;
      await this.bind(spec, spec.addr.host, spec.addr.port, null, true);
    }
    this.unsubscribe = this.opts.state.onChange(() => {
      this.syncing = this.syncing.then(() => this.sync());
    });
    await this.sync();
  }

  /**
   * Illegal ports (ztunnel's illegal_ports): 15001/15006/15008, the ports of the per-workload
   * listeners and the SOCKS5 port. A loopback destination on one of them is a self-call and
   * no inbound target may use one. Fixed-host capture listeners (e.g. an explicit
   * OUTBOUND_ADDR on a service VIP:80) are not in the set: their address IS a destination;
   * loops through them are caught exactly by isOwnAddress().
   */
  illegalPorts(): Set<number> {
    const s = new Set<number>([15001, 15006, 15008]);
    const counts = (spec: ListenerSpec): boolean => !!spec.addr && (spec.addr.host === null || spec.name === 'socks5');
    for (const spec of this.opts.specs) if (counts(spec) && spec.addr!.port !== 0) s.add(spec.addr!.port);
    for (const b of this.bound.values()) if (counts(b.spec)) s.add(b.address.port);
    return s;
  }

  /**
   * Whether `a` is one of our listeners (dialling it would loop back into the proxy). A
   * wildcard listener only covers addresses of this host's own interfaces: treating it as
   * "every IP" made a one-proxy-per-pod setup (0.0.0.0:15008) refuse HBONE to every peer.
   * The interface list is read only when a wildcard listener's port matches.
   */
  isOwnAddress(a: SocketAddr): boolean {
    return isOwnAddressIn(this.boundAddresses(), a);
  }

  boundAddresses(): SocketAddr[] {
    return [...this.bound.values()].map((b) => b.address);
  }

  listeners(): readonly BoundListener[] {
    return [...this.bound.values()].map((b) => ({ name: b.spec.name, address: b.address, ...(b.workloadUid ? { workload: b.workloadUid } : {}) }));
  }

  /** The per-workload listener address of a spec for a workload IP, if bound. */
  addressFor(name: ListenerName, ip: string): SocketAddr | undefined {
    for (const b of this.bound.values()) if (b.spec.name === name && b.address.ip === ip) return b.address;
    return undefined;
  }

  /**
   * Stops accepting now; connections already accepted belong to their handlers. It does not
   * wait for the servers' close callbacks: those fire only once every accepted socket has
   * closed, idle pooled HBONE connections from peers included, which would hold the drain
   * (and the GOAWAY that tells those peers to go) until the termination deadline.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    for (const b of this.bound.values()) b.server.close();
    this.bound.clear();
  }

  destroy(): void {
    this.closed = true;
    this.unsubscribe?.();
    for (const b of this.bound.values()) b.server.close();
    this.bound.clear();
  }

  dump(): unknown {
    return {
      bound: this.listeners().map((l) => ({ name: l.name, address: formatSocketAddr(l.address), workload: l.workload ?? null })),
      failed: Object.fromEntries(this.failures),
    };
  }

  private localWorkloads(): Workload[] {
    return this.opts.state.workloadsOnNode(this.opts.nodeName).filter((w) => w.node === this.opts.nodeName);
  }

  /** Diffs wanted per-workload listeners against bound ones. */
  private async sync(): Promise<void> {
    if (this.closed) return;
    const wanted = new Map<string, { spec: ListenerSpec; ip: string; port: number; uid: string }>();
    for (const w of this.localWorkloads()) {
      for (const ip of w.workloadIps) {
        for (const spec of this.opts.specs) {
          if (!spec.addr || spec.addr.host !== null) continue;
          wanted.set(keyOf(spec.name, ip, w.uid), { spec, ip, port: spec.addr.port, uid: w.uid });
        }
      }
    }
    for (const [k, b] of this.bound) {
      if (b.workloadUid === null || wanted.has(k)) continue;
      this.bound.delete(k);
      b.server.close();
      this.opts.logger.info({ listener: b.spec.name, address: formatSocketAddr(b.address), workload: b.workloadUid }, 'listener closed (workload left this node)');
      this.opts.onChange?.();
    }
    for (const k of [...this.failures.keys()]) if (!wanted.has(k)) this.failures.delete(k);
    await Promise.all(
      [...wanted.entries()]
        .filter(([k]) => !this.bound.has(k) && !this.binding.has(k))
        .map(([, want]) => this.bind(want.spec, want.ip, want.port, want.uid, false)),
    );
  }

  private async bind(spec: ListenerSpec, host: string, port: number, uid: string | null, fatal: boolean): Promise<void> {
    const key = uid === null ? `${spec.name}|fixed` : keyOf(spec.name, host, uid);
    this.binding.add(key);
    const server = createServer({ allowHalfOpen: true });
    try {
      const address = await listenOn(server, host, port);
      if (this.closed || (uid !== null && !this.stillWanted(uid, host))) {
        server.close();
        return;
      }
      const info: AcceptInfo = { listener: spec.name, bound: address, workloadUid: uid };
      server.on('connection', (socket: Socket) => spec.onSocket(socket, info));
      server.on('error', (err) => this.opts.logger.error({ err, listener: spec.name, address: formatSocketAddr(address) }, 'listener error'));
      this.bound.set(key, { key, server, spec, address, workloadUid: uid });
      this.failures.delete(key);
      this.opts.onChange?.();
      this.opts.logger.debug({ listener: spec.name, address: formatSocketAddr(address), workload: uid }, 'listener bound');
    } catch (err) {
      server.close();
      const what = `${spec.name} ${formatListenAddr({ host, port })}`;
      if (fatal) throw new Error(`cannot bind ${what}: ${(err as Error).message}`, { cause: err });
      const msg = (err as Error).message;
      if (this.failures.get(key) !== msg) this.opts.logger.error({ listener: spec.name, address: formatListenAddr({ host, port }), workload: uid, error: msg }, 'cannot bind listener for workload; its traffic is not served');
      this.failures.set(key, msg);
    } finally {
      this.binding.delete(key);
    }
  }

  private stillWanted(uid: string, ip: string): boolean {
    const w = this.opts.state.findWorkloadByUid(uid);
    return !!w && w.node === this.opts.nodeName && w.workloadIps.includes(ip);
  }
}

function keyOf(name: string, ip: string, uid: string): string {
  return `${name}|${ip}|${uid}`;
}

function listenOn(server: Server, host: string, port: number): Promise<SocketAddr> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      const a = server.address();
      if (!a || typeof a === 'string') return reject(new Error('listener has no address'));
      resolve(makeSocketAddr(a.address, a.port));
    });
  });
}

/** True for loopback and for any address configured on this host's (this netns's) interfaces. */
function isLocalInterfaceIp(ip: string): boolean {
  if (isLoopback(ip)) return true;
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) if (canonicalIp(i.address) === ip) return true;
  return false;
}

/** isOwnAddress over a list of bound addresses (a worker thread asks it of the main thread's list). */
export function isOwnAddressIn(bound: Iterable<SocketAddr>, a: SocketAddr): boolean {
  for (const b of bound) {
    if (b.port !== a.port) continue;
    if (b.ip === a.ip) return true;
    if ((b.ip === '0.0.0.0' || b.ip === '::') && isLocalInterfaceIp(a.ip)) return true;
  }
  return false;
}
