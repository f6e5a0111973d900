import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError, REASONS, classifyError, errorMessage, type Reason } from '../errors';
import { SpiffeId } from '../identity/spiffe';
import type { Workload } from '../state/types';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import { resolveDestination } from '../native/orig-dst';
import { workloadIdentity } from '../identity/spiffe';
import type { ConnectionContext } from '../telemetry/connection-context';
import { ConnectionResult } from '../telemetry/connection-result';
import { dialTcp, abortLeg } from '../transport/dial';
import { isLoopback } from '../util/ip';
import type { AcceptInfo } from './listener-manager';
import { findLocalWorkload, waitForLocalWorkload } from './local-source';
import { resolveSocksHost } from './socks-host';

import type { OutboundDeps, OutboundPlan } from './outbound-types';
import { SocksError, buildSocksReply, readSocksHandshake, socksReplyFor, type SocksTarget } from './socks5';

/** Context phase result: everything needed to open the ConnectionResult. */
interface Resolved {
  readonly src: SocketAddr;
  readonly dst: SocketAddr;
  readonly srcWorkload: Workload;
  readonly plan: OutboundPlan;
}

/**
 * One outbound connection (captured on 15001, explicit on a fixed OUTBOUND_ADDR, or via
 * SOCKS5). It owns the client socket from accept to close and runs ztunnel's
 * phases: destination → self-call → source workload → route (early failures: WARN + reason
 * counter only) → open result → certificate + upstream → splice → record once.
 */
export class OutboundConnection {
  private src: SocketAddr | null = null;
  private dst: SocketAddr | null = null;
  /** Bytes the SOCKS5 handshake read from the client (not app data). */
  private socksConsumed = 0;

  constructor(
    private readonly deps: OutboundDeps,
    private readonly socket: Socket,
    private readonly info: AcceptInfo,
    private readonly socks: boolean,
  ) {
    socket.on('error', ignoreError); // errors surface through splice / the phases below
  }

  /** Never rejects: every outcome is recorded or logged as an early failure. */
  async run(): Promise<void> {
    let resolved: Resolved;
    try {
      resolved = await this.resolveContext();
    } catch (err) {
      this.earlyFailure(err);
      return;
    }
    await this.proxy(resolved);
  }

  private async resolveContext(): Promise<Resolved> {
    const { socket, deps } = this;
    if (socket.remoteAddress === undefined || socket.remotePort === undefined) throw new ProxyError('RESET', 'client closed before the connection was handled');
    const src = (this.src = makeSocketAddr(socket.remoteAddress, socket.remotePort));
    let target: SocksTarget;
    if (this.socks) {
      const hs = await readSocksHandshake(socket, deps.settings.socksHandshakeTimeoutMs);
      this.socksConsumed = hs.consumed;
      target = hs.target;
    } else {
      target = { kind: 'ip', addr: resolveDestination(deps.capture, socket).addr };
    }
    if (target.kind === 'ip') this.checkSelfCall((this.dst = target.addr));
    const srcWorkload = await this.sourceWorkload(src);
    // A SOCKS5 hostname is resolved once the client is known: a name that is not a
    // Kubernetes FQDN is looked for on demand in the client's namespace.
    const dst = target.kind === 'ip' ? target.addr : await this.resolveSocksHost(target, srcWorkload.namespace);
    if (target.kind !== 'ip') this.checkSelfCall((this.dst = dst));
    if (deps.demand) {
      const addr = { network: deps.settings.network, ip: dst.ip };
      await deps.demand.fetchAddress(addr, srcWorkload.namespace);
      await deps.demand.fetchRouteDependencies(addr, srcWorkload.namespace);
    }
    const plan = deps.route(srcWorkload, dst, src.ip);
    // Same-node HBONE to our own 15008 is normal (ztunnel does it too); a plain TCP dial
    // to one of our listeners would loop.
    if (plan.kind !== 'hbone' && deps.isOwnAddress(plan.nextHop)) throw new ProxyError('SELF_CALL', `the route for ${formatSocketAddr(dst)} leads back to this proxy's listener ${formatSocketAddr(plan.nextHop)}`);
    return { src, dst, srcWorkload, plan };
  }

  private checkSelfCall(dst: SocketAddr): void {
    if (isLoopback(dst.ip) && this.deps.illegalPorts().has(dst.port)) {
      throw new ProxyError('SELF_CALL', `destination ${formatSocketAddr(dst)} is one of the proxy's own ports`);
    }
  }

  /**
   * The client's workload. In-pod: the connection was made inside this pod's namespace, so
   * the pod is the source (by its uid, as ztunnel does; fetched on demand when unknown); the
   * source address is the fallback. By address it must be a workload on this node, waited
   * for a bounded time (a new pod can send before the state knows it); with on-demand the
   * control plane is asked for it meanwhile.
   */
  private async sourceWorkload(src: SocketAddr): Promise<Workload> {
    const { deps, socket } = this;
    const s = deps.settings;
    const pod = this.info.pod;
    const podWorkload = pod === undefined ? undefined : deps.demand ? await deps.demand.fetchWorkloadByUid(pod) : deps.state.findWorkloadByUid(pod);
    if (podWorkload?.node === s.nodeName) return podWorkload;
    const known = findLocalWorkload(deps.state, s.network, s.nodeName, src.ip);
    if (known) return known;
    if (deps.demand) void deps.demand.fetchWorkloadByAddr({ network: s.network, ip: src.ip });
    // Resolves when the client goes away (or already has): the wait is pointless then.
    const gone = socket.destroyed ? Promise.resolve() : once(socket, 'close').catch(() => undefined);
    const w = await waitForLocalWorkload(deps.state, s.network, s.nodeName, src.ip, s.localWorkloadWaitMs, gone);
    if (w) return w;
    if (socket.destroyed) throw new ProxyError('RESET', `client ${formatSocketAddr(src)} went away while its workload was looked up`);
    const listenerOwner = this.info.workloadUid ? ` (the connection arrived on the listener of workload ${this.info.workloadUid} at ${formatSocketAddr(this.info.bound)}; it is not used as a substitute)` : '';
    throw new ProxyError('UNKNOWN_SOURCE', `source ${src.ip} is not a workload on node ${JSON.stringify(s.nodeName)} after waiting ${s.localWorkloadWaitMs}ms${listenerOwner}`);
  }

  private resolveSocksHost(t: { readonly host: string; readonly port: number }, clientNamespace: string): Promise<SocketAddr> {
    const s = this.deps.settings;
    return resolveSocksHost(t.host, t.port, { state: this.deps.state, network: s.network, clusterDomain: s.clusterDomain, clientNamespace, ...(this.deps.demand ? { demand: this.deps.demand } : {}) });
  }

  private earlyFailure(err: unknown): void {
    const reason = classifyError(err);
    const msg = errorMessage(err);
    this.deps.telemetry.metrics.earlyFailure('outbound', reason);
    this.deps.telemetry.access.failed({ direction: 'outbound', src: this.src, dst: this.dst }, reason, msg, { listener: this.info.listener });
    if (this.socks) {
      const code = err instanceof SocksError ? err.reply : socksReplyFor(reason);
      if (code !== null && this.socket.writable) {
        this.socket.end(buildSocksReply(code));
        setTimeout(() => this.socket.destroy(), 1000).unref();
        return;
      }
    }
    this.socket.destroy();
  }

  private buildContext(r: Resolved): ConnectionContext {
    const p = r.plan;
    const hbone = p.kind === 'hbone';
    return {
      direction: 'outbound',
      src: r.src,
      dst: p.nextHop,
      hboneAddr: p.kind === 'hbone' ? p.authority : null,
      srcWorkload: r.srcWorkload,
      dstWorkload: p.kind === 'passthrough' ? null : p.destWorkload,
      dstService: p.destService,
      srcIdentity: hbone ? workloadIdentity(r.srcWorkload) : null,
      dstIdentity: hbone ? destinationIdentity(p.destWorkload, p.expectedIdentities) : null,
      mtls: hbone,
    };
  }

  private async proxy(r: Resolved): Promise<void> {
    const { socket, deps } = this;
    const result = new ConnectionResult(deps.telemetry, this.buildContext(r));
    let upstream: Duplex | null = null;
    result.onAbort(() => {
      abortLeg(socket);
      abortLeg(upstream);
    });
    try {
      upstream = await this.openUpstream(r);
    } catch (err) {
      const reason = classifyError(err);
      this.closeWithFailure(reason);
      result.record({ reason, error: errorMessage(err) });
      return;
    }
    if (result.terminatedReason !== null || socket.destroyed) {
      upstream.destroy();
      result.record({ reason: 'RESET', error: 'client closed while the upstream was connecting' });
      return;
    }
    if (this.socks) socket.write(buildSocksReply(0));
    // Counted from here: the SOCKS5 handshake bytes are protocol, not app data.
    result.setByteSource(socket, 'client', { read: this.socksConsumed, written: socket.bytesWritten ?? 0 });
    const outcome = await deps.splice(socket, upstream);
    result.record(outcome);
  }

  /**
   * SOCKS clients get the mapped reply code before the close; captured ones get a reset
   * (ECONNRESET), never a clean EOF that would read as an empty but successful connection.
   */
  private closeWithFailure(reason: Reason): void {
    if (this.socks && this.socket.writable) {
      this.socket.end(buildSocksReply(socksReplyFor(reason)));
      setTimeout(() => this.socket.destroy(), 1000).unref();
      return;
    }
    abortLeg(this.socket);
  }

  private async openUpstream(r: Resolved): Promise<Duplex> {
    const { deps } = this;
    const p = r.plan;
    // In-pod: dial from the pod's own namespace, bound to its IP (which also keys pooled
    // HBONE sessions per pod, so one pod's tunnel never carries another pod's traffic).
    const createSocket = this.info.pod !== undefined ? deps.podSockets?.forPod(this.info.pod) : undefined;
    const localAddress = isLoopback(r.src.ip) || (createSocket && r.src.family === p.nextHop.family) ? r.src.ip : undefined;
    if (p.kind !== 'hbone') {
      return dialTcp(p.nextHop, { timeoutMs: deps.settings.connectTimeoutMs, localAddress, prepare: deps.prepareDial, createSocket });
    }
    const id = workloadIdentity(r.srcWorkload);
    // The common case has a valid certificate cached: skip the bounded wait (a timer and a
    // race per connection). Otherwise wait for the CA here so a missing certificate is
    // reported as an identity failure within the connect timeout rather than as a dial
    // failure. The CA's own reason (CA_UNREACHABLE, CERT_EXPIRED, …) is kept: it names
    // what to fix, and its response flag is IDENTITY_ERROR like ztunnel's.
    if (!deps.certs.findCertificate(id)) {
      try {
        await withTimeout(deps.certs.fetchCertificate(id, 'realtime'), deps.settings.connectTimeoutMs, `the CA did not issue one within ${deps.settings.connectTimeoutMs}ms`);
      } catch (err) {
        const reason = err instanceof ProxyError && REASONS[err.reason].flag === 'IDENTITY_ERROR' ? err.reason : 'IDENTITY_ERROR';
        throw new ProxyError(reason, `no certificate for ${id.toString()}: ${errorMessage(err)}`, {}, err);
      }
    }
    const s = await deps.hbone
      .connect({
      nextHop: p.nextHop,
      authority: p.authority,
      expectedIdentities: p.expectedIdentities,
      srcIdentity: id,
      peerUid: p.destWorkload.uid,
      headers: deps.headers.build(r.srcWorkload, r.src, p.destService),
      ...(localAddress ? { localAddress } : {}),
      ...(createSocket ? { createSocket } : {}),
      })
      .catch((err: unknown) => {
        throw peerDenied(err) ?? err;
      });
    return s.stream;
  }
}

/** The client socket's 'error' listener: one function for every connection, not a closure each. */
const ignoreError = (): void => undefined;

/**
 * A 401 from the peer proxy is its authorization DENY: reported as DENY here too (SOCKS
 * reply 0x02), with the peer's message kept as the cause.
 */
function peerDenied(err: unknown): ProxyError | null {
  if (!(err instanceof ProxyError) || err.reason !== 'HBONE_STATUS') return null;
  const status = Number(err.details['status']);
  if (status !== 401 && !/\b401\b/.test(err.message)) return null;
  return new ProxyError('DENY', `the destination's node proxy denied the connection (HTTP 401): ${err.message}`, { status: 401 }, err);
}

/** Bounds a wait the connection cannot afford to make unbounded (the client is waiting). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/**
 * The identity the route expects first. The routing lists the destination workload's own
 * identity first, whose parsed form is kept per workload: no SPIFFE string is parsed per
 * connection unless the list starts with something else.
 */
function destinationIdentity(w: Workload, ids: readonly string[]): SpiffeId | null {
  const own = workloadIdentity(w);
  return ids[0] === own.toString() ? own : firstIdentity(ids);
}

function firstIdentity(ids: readonly string[]): SpiffeId | null {
  for (const s of ids) {
    const id = SpiffeId.tryParse(s);
    if (id) return id;
  }
  return null;
}
