import type * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import type * as net from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BoundListener, Component } from '../app/component';
import type { StateView } from '../state/view';
import type { Workload } from '../state/types';
import { makeSocketAddr, type ListenAddr } from '../util/socket-addr';
import type { AnswerSettings, DnsClient } from './answer';
import { DnsEngine } from './engine';
import { Forwarder, hostSockets, type Upstream, type UpstreamSockets } from './forwarder';
import { HostIndex } from './host-index';
import { createDnsMetrics } from './metrics';
import { bindHostPair, DnsServer } from './server';
import { parseResolvConf } from './upstreams';

/** Forwarded queries waiting at once over the whole node; bounds memory under a flood. */
export const MAX_FORWARDS_IN_FLIGHT = 1024;
/** TCP connections per DNS listener. */
const MAX_TCP_CONNECTIONS = 64;

/** What the DNS proxy needs from a pod's network namespace (src/inpod's PodNetns). */
export interface PodNamespace {
  udpSocket(host: string, port: number, reusePort?: boolean): Promise<dgram.Socket>;
  listenTcp(host: string, port: number, reusePort: boolean, opts?: net.ServerOpts): Promise<net.Server>;
  readonly tcpSocket: (family: 4 | 6) => net.Socket;
}

/** A pod as the node agent described it (used when the state does not know the pod yet). */
export interface PodIdentity {
  readonly name: string;
  readonly namespace: string;
}

export interface DnsProxyOptions {
  readonly state: StateView;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly nodeName: string;
  readonly network: string;
  readonly settings: AnswerSettings;
  /** DNS_PROXY_ADDR: host-less = per workload IP (loopback mode) or per pod (in-pod mode). */
  readonly addr: ListenAddr;
  /** In-pod mode: host-less listeners are made by startPod, inside each pod. */
  readonly inpod: boolean;
  /** INPOD_PORT_REUSE for the pods' listeners. */
  readonly reusePort: boolean;
  /** Explicit upstreams (DNS_UPSTREAMS); empty = the nameservers of resolvConfPath, read at start. */
  readonly upstreams: readonly Upstream[];
  readonly resolvConfPath: string;
  readonly forwardTimeoutMs: number;
  readonly maxInFlight?: number;
}

interface Bound {
  readonly server: DnsServer;
  readonly address: string;
  readonly port: number;
  readonly workload: string | null;
}

/**
 * The node's DNS proxy (DNS_CAPTURE): one engine (state index, metrics, in-flight bound)
 * and a UDP+TCP listener per client. Three placements, as the other host-less listeners:
 * in-pod mode binds 127.0.0.1 (and ::1 when the pod has IPv6) inside each enrolled pod and
 * forwards from there with the packet mark; loopback mode binds every local workload IP,
 * kept in step with the state; an address with a host binds exactly that and tells clients
 * apart by source address.
 */
export class DnsProxy implements Component {
  readonly name = 'dns';
  private readonly index: HostIndex;
  private readonly engine: DnsEngine;
  private readonly log: Logger;
  private upstreams: readonly Upstream[] = [];
  private readonly bound = new Map<string, Bound>();
  private readonly binding = new Set<string>();
  private readonly failures = new Map<string, string>();
  private readonly pods = new Map<string, Bound[]>();
  private unsubscribe: (() => void) | null = null;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly o: DnsProxyOptions) {
    this.log = o.logger.child({ scope: 'dns' });
    this.index = new HostIndex(o.state);
    this.engine = new DnsEngine({ state: o.state, index: this.index, metrics: createDnsMetrics(o.registry), logger: this.log, settings: o.settings, maxInFlight: o.maxInFlight ?? MAX_FORWARDS_IN_FLIGHT });
  }

  async start(): Promise<void> {
    this.upstreams = this.o.upstreams.length > 0 ? this.o.upstreams : this.readResolvConf();
    this.log.info({ upstreams: this.upstreams.map((u) => `${u.ip}:${u.port}`), addr: this.o.addr.host ?? (this.o.inpod ? 'in each pod' : 'on each local workload IP'), port: this.o.addr.port }, 'DNS proxy on');
    if (this.o.addr.host !== null) {
      const { host, port } = this.o.addr;
      const pair = await bindHostPair(host, port).catch((err: Error) => {
        throw new Error(`cannot bind DNS proxy ${host}:${port}: ${err.message}`, { cause: err });
      });
      this.add('fixed', pair, host, null, (ip) => this.localWorkloadByIp(ip), hostSockets);
      return;
    }
    if (this.o.inpod) return;
    this.unsubscribe = this.o.state.onChange(() => {
      this.syncing = this.syncing.then(() => this.sync());
    });
    await this.sync();
  }

  /**
   * In-pod: the pod's DNS listeners inside its namespace. The client is the pod's workload
   * (by uid, as the agent's uid is the workload uid), or what the agent said about it while
   * the state does not know it. Returns the pod's stop function (ZDS del).
   */
  async startPod(uid: string, pod: PodIdentity, ns: PodNamespace): Promise<() => void> {
    const port = this.o.addr.port;
    const client = (): DnsClient => this.o.state.findWorkloadByUid(uid) ?? { name: pod.name, namespace: pod.namespace, network: this.o.network, canonicalName: '', canonicalRevision: '' };
    const sockets: UpstreamSockets = { udp: (family) => ns.udpSocket(family === 6 ? '::' : '0.0.0.0', 0), tcp: (family) => ns.tcpSocket(family) };
    const list: Bound[] = [];
    for (const host of this.o.settings.ipv6Enabled ? ['127.0.0.1', '::1'] : ['127.0.0.1']) {
      let udp: dgram.Socket | null = null;
      try {
        udp = await ns.udpSocket(host, port, this.o.reusePort);
        const tcp = await ns.listenTcp(host, port, this.o.reusePort);
        list.push(this.add(null, { udp, tcp }, host, uid, client, sockets));
      } catch (err) {
        udp?.close();
        // A pod without IPv6 has no ::1: serve IPv4 only (a failed ::1 must not cost the pod its DNS).
        if (host === '::1') {
          this.log.debug({ pod: uid, error: (err as Error).message }, 'no IPv6 loopback in the pod; DNS proxy on 127.0.0.1 only');
          continue;
        }
        for (const b of list) b.server.close();
        throw new Error(`cannot bind the DNS proxy ${host}:${port} in pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.pods.set(uid, list);
    return () => {
      if (this.pods.get(uid) !== list) return;
      this.pods.delete(uid);
      for (const b of list) b.server.close();
    };
  }

  listeners(): readonly BoundListener[] {
    const out: BoundListener[] = [];
    for (const b of [...this.bound.values(), ...[...this.pods.values()].flat()]) out.push({ name: 'dns', address: makeSocketAddr(b.address, b.port), ...(b.workload ? { workload: b.workload } : {}) });
    return out;
  }

  dump(): unknown {
    return { upstreams: this.upstreams.map((u) => `${u.ip}:${u.port}`), forwardsInFlight: this.engine.forwardedInFlight, failed: Object.fromEntries(this.failures) };
  }

  async close(): Promise<void> {
    this.destroy();
  }

  destroy(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    for (const b of this.bound.values()) b.server.close();
    this.bound.clear();
    for (const list of this.pods.values()) for (const b of list) b.server.close();
    this.pods.clear();
    this.index.close();
  }

  private add(key: string | null, pair: { udp: dgram.Socket; tcp: net.Server }, address: string, workload: string | null, client: (ip: string) => DnsClient | undefined, sockets: UpstreamSockets): Bound {
    const server = new DnsServer({ engine: this.engine, forwarder: new Forwarder(this.upstreams, this.o.forwardTimeoutMs, sockets), client, logger: this.log, udp: pair.udp, tcp: pair.tcp, maxTcpConnections: MAX_TCP_CONNECTIONS });
    const b: Bound = { server, address, port: this.o.addr.port === 0 ? addressPort(pair.tcp) : this.o.addr.port, workload };
    if (key !== null) this.bound.set(key, b);
    return b;
  }

  private readResolvConf(): Upstream[] {
    try {
      const list = parseResolvConf(readFileSync(this.o.resolvConfPath, 'utf8'));
      if (list.length === 0) this.log.warn({ path: this.o.resolvConfPath, reason: 'DNS_UPSTREAM_UNREACHABLE' }, 'no nameserver in resolv.conf: names outside the mesh get SERVFAIL (set DNS_UPSTREAMS)');
      return list;
    } catch (err) {
      this.log.warn({ path: this.o.resolvConfPath, error: (err as Error).message, reason: 'DNS_UPSTREAM_UNREACHABLE' }, 'cannot read resolv.conf: names outside the mesh get SERVFAIL (set DNS_UPSTREAMS)');
      return [];
    }
  }

  private localWorkloadByIp(ip: string): Workload | undefined {
    const w = this.o.state.findWorkloadByAddr({ network: this.o.network, ip: ip.startsWith('::ffff:') ? ip.slice(7) : ip });
    return w && w.node === this.o.nodeName ? w : undefined;
  }

  /** Loopback mode: a listener on every IP of every workload of this node; gone workloads lose theirs. */
  private async sync(): Promise<void> {
    if (this.closed) return;
    const wanted = new Map<string, { ip: string; uid: string }>();
    for (const w of this.o.state.workloadsOnNode(this.o.nodeName)) {
      if (w.node !== this.o.nodeName) continue;
      for (const ip of w.workloadIps) wanted.set(`${ip}|${w.uid}`, { ip, uid: w.uid });
    }
    for (const [k, b] of this.bound) {
      if (b.workload === null || wanted.has(k)) continue;
      this.bound.delete(k);
      b.server.close();
    }
    for (const k of [...this.failures.keys()]) if (!wanted.has(k)) this.failures.delete(k);
    await Promise.all([...wanted].filter(([k]) => !this.bound.has(k) && !this.binding.has(k)).map(([k, want]) => this.bindWorkload(k, want.ip, want.uid)));
  }

  private async bindWorkload(key: string, ip: string, uid: string): Promise<void> {
    this.binding.add(key);
    try {
      const pair = await bindHostPair(ip, this.o.addr.port);
      const w = this.o.state.findWorkloadByUid(uid);
      if (this.closed || !w || !w.workloadIps.includes(ip)) {
        pair.tcp.close();
        pair.udp.close();
        return;
      }
      this.add(key, pair, ip, uid, () => this.o.state.findWorkloadByUid(uid), hostSockets);
      this.failures.delete(key);
    } catch (err) {
      const msg = (err as Error).message;
      if (this.failures.get(key) !== msg) this.log.error({ address: `${ip}:${this.o.addr.port}`, workload: uid, error: msg }, 'cannot bind the DNS proxy for workload; its DNS is not served');
      this.failures.set(key, msg);
    } finally {
      this.binding.delete(key);
    }
  }
}

function addressPort(s: net.Server): number {
  const a = s.address();
  return a && typeof a !== 'string' ? a.port : 0;
}
