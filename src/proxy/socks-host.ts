import { ProxyError } from '../errors';
import type { DemandLookup } from '../state/demand';
import type { Service } from '../state/types';
import type { StateView } from '../state/view';
import { makeSocketAddr, type SocketAddr } from '../util/socket-addr';

export interface SocksHostContext {
  readonly state: StateView;
  readonly network: string;
  readonly clusterDomain: string;
  /** The client's namespace: where a hostname that names none (ServiceEntry-style) is looked for on demand. */
  readonly clientNamespace: string;
  /** XDS_ON_DEMAND: a hostname the state does not know is asked for as `namespace/hostname`. */
  readonly demand?: DemandLookup;
}

/**
 * A SOCKS5 domain target resolves from the mesh state (a service hostname → its VIP), never
 * from DNS. Short names are completed with the cluster domain, as a pod's DNS search list
 * would: `name.ns` and `name.ns.svc` → `name.ns.svc.<CLUSTER_DOMAIN>`. With on-demand, a miss
 * asks the control plane for `namespace/hostname` (the namespace the FQDN names, else the
 * client's) and waits a bounded time before giving up with SOCKS_UNKNOWN_HOST.
 */
export async function resolveSocksHost(host: string, port: number, c: SocksHostContext): Promise<SocketAddr> {
  const fqdn = completeHost(host, c.clusterDomain);
  let svc = findServiceByHost(c.state, fqdn);
  if (!svc && c.demand) {
    const hit = await c.demand.fetchHostname(kubernetesNamespace(fqdn) ?? c.clientNamespace, fqdn);
    svc = hit?.kind === 'service' ? hit.service : undefined;
  }
  const vip = svc?.vips.find((v) => v.network === c.network && v.prefixLen === (v.ip.includes(':') ? 128 : 32)) ?? svc?.vips[0];
  if (!svc || !vip) {
    const asked = c.demand ? ' (also asked the control plane)' : '';
    throw new ProxyError('SOCKS_UNKNOWN_HOST', `SOCKS5 host ${host}:${port} is not a known service${svc ? ' with a VIP' : ''}${asked}`);
  }
  return makeSocketAddr(vip.ip, port);
}

function completeHost(name: string, clusterDomain: string): string {
  const short = name.split('.');
  if (short.length === 2) return `${name}.svc.${clusterDomain}`;
  if (short.length === 3 && short[2] === 'svc') return `${name}.${clusterDomain}`;
  return name;
}

/** `name.ns.svc.…` names its namespace. */
function kubernetesNamespace(fqdn: string): string | undefined {
  const labels = fqdn.split('.');
  return labels.length >= 3 && labels[2] === 'svc' ? labels[1] : undefined;
}

/** Kubernetes FQDNs hit the index directly; other hostnames (ServiceEntry-style) fall back to a scan of the services. */
function findServiceByHost(state: StateView, fqdn: string): Service | undefined {
  const ns = kubernetesNamespace(fqdn);
  if (ns !== undefined) {
    const hit = state.findServiceByHostname(ns, fqdn);
    if (hit) return hit;
  }
  return state.allServices().find((s) => s.hostname === fqdn);
}
