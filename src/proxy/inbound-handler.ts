import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { REASONS, classifyError, errorMessage } from '../errors';
import type { SpiffeId } from '../identity/spiffe';
import type { AuthzContext } from '../policy/types';
import type { Workload } from '../state/types';
import type { StateView } from '../state/view';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import { workloadIdentity } from '../identity/spiffe';
import { ConnectionResult } from '../telemetry/connection-result';
import { dialTcp, abortLeg, type DialOptions } from '../transport/dial';
import { isLoopback } from '../util/ip';
import type { InboundConnect } from '../transport/hbone/types';
import type { InboundDeps, InboundTarget } from './inbound-types';
import { appTunnelDelivery } from './app-tunnel';

/**
 * The source workload for telemetry on inbound: the workload at the peer IP, but with a
 * verified peer identity only if that workload's identity matches it (never attribute a
 * connection to a workload whose identity the certificate does not prove).
 */
export function inboundSourceWorkload(state: StateView, network: string, ip: string, identity: SpiffeId | null): Workload | null {
  const w = state.findWorkloadByAddr({ network, ip });
  if (!w) return null;
  if (identity && !workloadIdentity(w).equals(identity)) return null;
  return w;
}

/** Authorization context for a connection to `t` (ztunnel assert_rbac inputs). */
export function authzContextFor(srcIp: string, srcIdentity: SpiffeId | null, t: InboundTarget, workload: Workload = t.workload): AuthzContext {
  return { srcIp, srcIdentity, dstIp: t.target.ip, dstPort: t.target.port, dstWorkload: workload };
}

/**
 * Handles one CONNECT the HBONE server accepted (ztunnel inbound.rs), in three phases:
 * validate (authority → local target; 400/503, early failure without metrics), admission
 * (authorize → 401 DENY; dial the app → 503 CONNECT), then 200 + splice. The app socket is
 * the plain TCP leg whose counters are the connection's bytes. Live connections are
 * tracked so a policy change can close the now-denied ones (DENY_LATE).
 */
export class InboundHboneHandler {
  constructor(private readonly deps: InboundDeps) {}

  /** The HboneServer's onConnect. Never rejects. */
  readonly onConnect = (req: InboundConnect): Promise<void> => this.handle(req);

  private async handle(req: InboundConnect): Promise<void> {
    const { deps } = this;
    let target: InboundTarget;
    try {
      if (deps.demand) await deps.demand.fetchWorkloadByAddr({ network: deps.settings.network, ip: req.localAddr.ip });
      target = deps.resolveTarget(req.authority, req.localAddr);
    } catch (err) {
      const reason = classifyError(err);
      const status = REASONS[reason].status === 503 ? 503 : 400;
      deps.telemetry.metrics.earlyFailure('inbound', reason);
      deps.telemetry.access.failed({ direction: 'inbound', src: req.peerAddr, dst: req.localAddr }, reason, errorMessage(err), {
        'dst.hbone_addr': formatSocketAddr(req.authority),
        'src.identity': req.peerIdentity.toString(),
      });
      req.reject(status, reason);
      return;
    }
    // ztunnel's inbound looks the peer's workload up (on demand) for telemetry.
    if (deps.demand) await deps.demand.fetchWorkloadByAddr({ network: deps.settings.network, ip: req.peerAddr.ip });
    const result = new ConnectionResult(deps.telemetry, {
      direction: 'inbound',
      src: req.peerAddr,
      dst: req.localAddr,
      hboneAddr: formatSocketAddr(req.authority),
      srcWorkload: inboundSourceWorkload(deps.state, deps.settings.network, req.peerAddr.ip, req.peerIdentity),
      dstWorkload: target.workload,
      dstService: target.service,
      srcIdentity: req.peerIdentity,
      dstIdentity: workloadIdentity(target.workload),
      mtls: true,
    });
    await this.admitAndProxy(req, target, result);
  }

  private async admitAndProxy(req: InboundConnect, resolved: InboundTarget, result: ConnectionResult): Promise<void> {
    const { deps } = this;
    // An application tunnel moves the dial (and, as in ztunnel, the port authorization sees) to its port.
    const tunnel = appTunnelDelivery(resolved.workload, resolved.target, req.peerAddr, req.authority, req.peerIdentity);
    const target: InboundTarget = tunnel ? { ...resolved, target: tunnel.target } : resolved;
    const ctx = authzContextFor(req.peerAddr.ip, req.peerIdentity, target);
    const decision = deps.authorize(ctx);
    deps.reportDryRun?.(decision, ctx);
    if (!decision.allowed) {
      req.reject(401, 'DENY');
      result.record({ reason: 'DENY', error: `denied: ${decision.why}`, policy: decision.policy });
      return;
    }
    if (deps.isOwnAddress(target.target)) {
      req.reject(503, 'ILLEGAL_PORT');
      result.record({ reason: 'ILLEGAL_PORT', error: `target ${formatSocketAddr(target.target)} is this proxy's own listener (no transparent capture to reach the app behind it)` });
      return;
    }
    let app: Socket | null = null;
    let stream: Duplex | null = null;
    let aborted = false;
    void req.aborted.then(() => {
      aborted = true;
      app?.destroy();
    });
    result.onAbort(() => {
      abortLeg(stream);
      abortLeg(app);
    });
    try {
      app = await dialTcp(...this.appDial(req, target, tunnel?.header ? 'proxy' : 'plain'));
    } catch (err) {
      const reason = classifyError(err);
      req.reject(503, reason);
      result.record({ reason, error: errorMessage(err) });
      return;
    }
    if (aborted || result.terminatedReason !== null) {
      app.destroy();
      if (result.terminatedReason === null) req.reject(503, 'RESET');
      result.record({ reason: 'RESET', error: 'the HBONE stream closed before the app connection was ready' });
      return;
    }
    // The PROXY header goes first; the connection's bytes are the tunnel's, so it is left out of them.
    if (tunnel?.header) app.write(tunnel.header);
    result.setByteSource(app, 'server', { read: 0, written: tunnel?.header?.length ?? 0 });
    const uid = target.workload.uid;
    result.recheck = () => deps.authorize(authzContextFor(req.peerAddr.ip, req.peerIdentity, target, deps.state.findWorkloadByUid(uid) ?? target.workload));
    try {
      stream = req.accept();
    } catch (err) {
      app.destroy();
      result.record({ reason: 'HBONE_RESET', error: errorMessage(err) });
      return;
    }
    result.record(await deps.splice(stream, app));
  }

  /**
   * Where and from where the app is dialled. A PROXY tunnel in a pod's namespace goes to the
   * pod's loopback from loopback (LOCALHOST_APP_TUNNEL), as ztunnel does, so the tunnel port
   * need not listen on the pod IP; anything else to the pod IP (see appSource).
   */
  private appDial(req: InboundConnect, target: InboundTarget, kind: 'proxy' | 'plain'): [SocketAddr, DialOptions] {
    const { settings, prepareDial, podSockets } = this.deps;
    const createSocket = podSockets?.forWorkload(target.workload);
    const base = { timeoutMs: settings.connectTimeoutMs, prepare: prepareDial, createSocket };
    if (kind === 'proxy' && settings.localhostAppTunnel && createSocket) {
      const loopback = target.target.family === 6 ? '::1' : '127.0.0.1';
      return [makeSocketAddr(loopback, target.target.port), { ...base, localAddress: loopback }];
    }
    return [target.target, { ...base, ...appSource(req.peerAddr.ip, target.target.ip, settings.origSrc) }];
  }
}

/**
 * The source for the dial to the app. With original source on (ENABLE_ORIG_SRC), the
 * client's own IP, bound transparently (IP_TRANSPARENT: it is not an address of this
 * host; the capture rules route the app's replies back to the proxy), as ztunnel does. On
 * a loopback mesh the peer's own loopback IP, which any process may bind, gives the app
 * the same view. Otherwise the kernel's choice. Never when the client is the app itself
 * (the connection would collide with itself) or of another IP family.
 */
export function appSource(peerIp: string, targetIp: string, origSrc: boolean): { localAddress?: string; transparent?: boolean } {
  if (peerIp === targetIp || isIP(peerIp) !== isIP(targetIp)) return {};
  if (origSrc) return { localAddress: peerIp, transparent: true };
  return isLoopback(peerIp) && isLoopback(targetIp) ? { localAddress: peerIp } : {};
}
