import { ProxyError } from '../errors';
import { buildOutboundRoute, resolveInboundTarget } from '../state/route';
import type { StateView } from '../state/view';
import { makeSocketAddr, type SocketAddr } from '../util/socket-addr';
import type { InboundResolver } from './inbound-types';
import type { OutboundRouter } from './outbound-types';

/**
 * Adapters from the state engine's pure routing (src/state/route.ts) to what the
 * connection handlers act on: routing errors become ProxyErrors with the same reason, so
 * they reach metrics and logs with a stable code.
 */
export function createOutboundRouter(state: StateView, network: string, illegalPorts: () => ReadonlySet<number>): OutboundRouter {
  return (srcWorkload, dst, srcIp) => {
    const r = buildOutboundRoute(state, { srcWorkload, dst, network, srcIp, illegalPorts: illegalPorts() });
    if (r.kind === 'error') throw new ProxyError(r.reason, r.message);
    return r;
  };
}

export function createInboundResolver(state: StateView, network: string, illegalPorts: () => ReadonlySet<number>): InboundResolver {
  return (authority: SocketAddr, localAddr: SocketAddr) => {
    const r = resolveInboundTarget(state, { localWorkload: null, localIp: localAddr.ip, authority, network, illegalPorts: illegalPorts() });
    if (r.kind === 'error') throw new ProxyError(r.reason, r.message);
    return { workload: r.workload, target: makeSocketAddr(r.ip, r.targetPort), service: r.services[0] ?? null };
  };
}
