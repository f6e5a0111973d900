import type { Socket } from 'node:net';
import { ProxyError, classifyError, errorMessage } from '../errors';
import { resolveDestination } from '../native/orig-dst';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import { workloadIdentity } from '../identity/spiffe';
import { ConnectionResult } from '../telemetry/connection-result';
import { dialTcp, abortLeg } from '../transport/dial';
import { appSource, authzContextFor, inboundSourceWorkload } from './inbound-handler';
import type { InboundDeps, InboundTarget } from './inbound-types';
import type { AcceptInfo } from './listener-manager';

/**
 * One plaintext inbound connection (15006): the destination is the original destination
 * (capture) or the listener's local address. Authorization runs with NO peer identity, so
 * a STRICT PeerAuthentication (a DENY with notPrincipals: [presence]) refuses it.
 * connection_security_policy is "unknown". Owns the accepted socket.
 */
export class InboundPlaintextConnection {
  private src: SocketAddr | null = null;
  private dst: SocketAddr | null = null;

  constructor(
    private readonly deps: InboundDeps,
    private readonly socket: Socket,
    private readonly info: AcceptInfo,
  ) {
    socket.on('error', () => undefined);
  }

  async run(): Promise<void> {
    let target: InboundTarget;
    try {
      target = this.resolve();
    } catch (err) {
      const reason = classifyError(err);
      this.deps.telemetry.metrics.earlyFailure('inbound', reason);
      this.deps.telemetry.access.failed({ direction: 'inbound', src: this.src, dst: this.dst }, reason, errorMessage(err), { listener: this.info.listener });
      this.socket.destroy();
      return;
    }
    await this.proxy(target);
  }

  private resolve(): InboundTarget {
    const { socket, deps } = this;
    if (socket.remoteAddress === undefined || socket.remotePort === undefined) throw new ProxyError('RESET', 'client closed before the connection was handled');
    this.src = makeSocketAddr(socket.remoteAddress, socket.remotePort);
    const dst = (this.dst = resolveDestination(deps.capture, socket).addr);
    if (dst.ip === this.info.bound.ip && dst.port === this.info.bound.port && this.info.workloadUid !== null) {
      throw new ProxyError('ILLEGAL_PORT', `no original destination for ${formatSocketAddr(dst)} (transparent capture unavailable) and the listener's own port cannot be the target`);
    }
    return deps.resolveTarget(dst, dst);
  }

  private async proxy(target: InboundTarget): Promise<void> {
    const { socket, deps } = this;
    const src = this.src as SocketAddr;
    if (deps.demand) await deps.demand.fetchWorkloadByAddr({ network: deps.settings.network, ip: src.ip });
    const result = new ConnectionResult(deps.telemetry, {
      direction: 'inbound',
      src,
      dst: this.dst as SocketAddr,
      hboneAddr: null,
      srcWorkload: inboundSourceWorkload(deps.state, deps.settings.network, src.ip, null),
      dstWorkload: target.workload,
      dstService: target.service,
      srcIdentity: null,
      dstIdentity: workloadIdentity(target.workload),
      mtls: false,
    });
    result.setByteSource(socket, 'client');
    const ctx = authzContextFor(src.ip, null, target);
    const decision = deps.authorize(ctx);
    deps.reportDryRun?.(decision, ctx);
    if (!decision.allowed) {
      socket.destroy();
      result.record({ reason: 'DENY', error: `denied: ${decision.why}`, policy: decision.policy });
      return;
    }
    if (deps.isOwnAddress(target.target)) {
      socket.destroy();
      result.record({ reason: 'ILLEGAL_PORT', error: `target ${formatSocketAddr(target.target)} is this proxy's own listener (without transparent capture the app behind it cannot be reached)` });
      return;
    }
    let app: Socket | null = null;
    result.onAbort(() => {
      abortLeg(socket);
      abortLeg(app);
    });
    try {
      app = await dialTcp(target.target, { timeoutMs: deps.settings.connectTimeoutMs, ...appSource(src.ip, target.target.ip, deps.settings.origSrc), prepare: deps.prepareDial, createSocket: deps.podSockets?.forWorkload(target.workload) });
    } catch (err) {
      socket.destroy();
      result.record({ reason: classifyError(err), error: errorMessage(err) });
      return;
    }
    if (socket.destroyed || result.terminatedReason !== null) {
      app.destroy();
      result.record({ reason: 'RESET', error: 'client closed while the app connection was opening' });
      return;
    }
    const uid = target.workload.uid;
    result.recheck = () => deps.authorize(authzContextFor(src.ip, null, target, deps.state.findWorkloadByUid(uid) ?? target.workload));
    result.record(await deps.splice(socket, app));
  }
}
