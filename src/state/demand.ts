import type { GatewayAddress, NetworkAddress, Service, Workload } from './types';
import type { StateView } from './view';

/**
 * Asks the control plane for one Address resource by its on-demand name (`network/ip`,
 * `namespace/hostname` or a workload uid) and resolves once the answer is in the state
 * (true), or false when the bounded wait ended or the stream is down. Never rejects.
 */
export type AddressDemander = (name: string) => Promise<boolean>;

/** A service or a workload found by a hostname (services first, as ztunnel looks them up). */
export type HostnameMatch = { readonly kind: 'service'; readonly service: Service } | { readonly kind: 'workload'; readonly workload: Workload };

/** The on-demand resource name of an address: `network/ip`, as istiod indexes them. */
export function addressName(a: NetworkAddress): string {
  return `${a.network}/${a.ip}`;
}

/**
 * Lookups of the data path that, with XDS_ON_DEMAND, fetch what the state does not know
 * yet (ztunnel's DemandProxyState): the state is asked first; only on a miss is the
 * control plane asked, and the connection waits a bounded time for the answer, then looks
 * again. Built only when on-demand is on (the data path makes plain state lookups
 * otherwise). Concurrent misses for one name share one request (the client keeps one
 * subscription per name).
 */
export class DemandLookup {
  constructor(
    readonly view: StateView,
    private readonly demander: AddressDemander,
  ) {}

  /** A workload at `addr` (the peer of an inbound connection, a local client, a local destination). */
  async fetchWorkloadByAddr(addr: NetworkAddress): Promise<Workload | undefined> {
    const now = this.view.findWorkloadByAddr(addr);
    if (now) return now;
    await this.demander(addressName(addr));
    return this.view.findWorkloadByAddr(addr);
  }

  /** A workload by uid (an in-pod connection's own pod). */
  async fetchWorkloadByUid(uid: string): Promise<Workload | undefined> {
    const now = this.view.findWorkloadByUid(uid);
    if (now) return now;
    await this.demander(uid);
    return this.view.findWorkloadByUid(uid);
  }

  /** A workload or a service VIP at `addr` (an outbound destination); `clientNamespace` breaks VIP ties. */
  async fetchAddress(addr: NetworkAddress, clientNamespace?: string): Promise<void> {
    if (this.view.findWorkloadByAddr(addr) || this.view.findServiceByVip(addr, clientNamespace)) return;
    await this.demander(addressName(addr));
  }

  /** A service (else a workload) named `namespace/hostname`. */
  async fetchHostname(namespace: string, hostname: string): Promise<HostnameMatch | undefined> {
    const now = findHostname(this.view, namespace, hostname);
    if (now) return now;
    await this.demander(`${namespace}/${hostname}`);
    return findHostname(this.view, namespace, hostname);
  }

  /**
   * What routing to `dst` will look up after the destination itself: the waypoint of the
   * workload or service there (by hostname or address). Fetched before the route is built,
   * so a route through a waypoint the state has not seen yet does not fail as unknown.
   */
  async fetchRouteDependencies(dst: NetworkAddress, clientNamespace: string): Promise<void> {
    const gateways: GatewayAddress[] = [];
    const wl = this.view.findWorkloadByAddr(dst);
    if (wl?.waypoint) gateways.push(wl.waypoint);
    const svc = wl ? undefined : this.view.findServiceByVip(dst, clientNamespace);
    if (svc) {
      if (svc.waypoint) gateways.push(svc.waypoint);
      for (const w of svc.weightedWaypoints) gateways.push(w.destination);
    }
    if (gateways.length === 0) return;
    await Promise.all(gateways.map((g) => this.fetchGateway(g)));
  }

  private async fetchGateway(g: GatewayAddress): Promise<void> {
    if (g.kind === 'hostname') await this.fetchHostname(g.namespace, g.hostname);
    else await this.fetchAddress({ network: g.network, ip: g.ip });
  }
}

/** ztunnel's find_hostname: the service `namespace/hostname`, else a workload with that hostname in that namespace (a scan: rare). */
export function findHostname(view: StateView, namespace: string, hostname: string): HostnameMatch | undefined {
  const service = view.findServiceByHostname(namespace, hostname);
  if (service) return { kind: 'service', service };
  const workload = view.allWorkloads().find((w) => w.hostname === hostname && w.namespace === namespace);
  return workload ? { kind: 'workload', workload } : undefined;
}
