import { serviceKey, type Scope, type Service, type Workload } from './types';
import type { StateView } from './view';

/** A chosen endpoint: which workload, which of its IPs, and the port on it. */
export interface Endpoint {
  readonly workload: Workload;
  readonly ip: string;
  readonly targetPort: number;
}

export type LbResult = { readonly ok: true; readonly endpoint: Endpoint; readonly candidates: number } | { readonly ok: false; readonly why: string };

export interface LbOptions {
  /** The source workload (locality ranking); null for admin tools. */
  readonly src: Workload | null;
  /** Address family of the dialled destination. */
  readonly family: 4 | 6;
  /** A number in [0, 1); injectable so tests are deterministic. */
  readonly random: () => number;
  /**
   * Waypoint resolution (service port = hboneMtlsPort): the port need not be declared on
   * the waypoint Service when the endpoint has an application tunnel.
   */
  readonly waypointMode?: boolean;
}

/**
 * ztunnel's load_balance: keep healthy endpoints (unless
 * AllowAll) that have an IP of a usable family and a target port for `servicePort`; for
 * Failover/Strict keep only the best locality rank (Strict also drops partial matches);
 * then pick at random weighted by capacity.
 */
export function loadBalance(view: StateView, svc: Service, servicePort: number, opts: LbOptions): LbResult {
  const c = candidateEndpoints(view, svc, servicePort, opts);
  if (!c.ok) return c;
  const chosen = weightedPick(c.endpoints, (e) => e.workload.capacity, opts.random);
  if (!chosen) return { ok: false, why: `service ${serviceKey(svc)}: every candidate endpoint has capacity 0` };
  return { ok: true, endpoint: chosen, candidates: c.endpoints.length };
}

/**
 * The endpoints load_balance chooses among: healthy (unless AllowAll), with a usable IP and
 * target port, and of the best locality rank for Failover/Strict. The waypoint's
 * DestinationRule load balancers pick from the same list.
 */
export function candidateEndpoints(view: StateView, svc: Service, servicePort: number, opts: Omit<LbOptions, 'random'>): { readonly ok: true; readonly endpoints: readonly Endpoint[] } | { readonly ok: false; readonly why: string } {
  const declared = Object.prototype.hasOwnProperty.call(svc.ports, servicePort);
  if (!declared && !opts.waypointMode) return { ok: false, why: `service ${serviceKey(svc)} has no port ${servicePort}` };
  const key = serviceKey(svc);
  const lb = svc.loadBalancer;
  const allowUnhealthy = lb?.healthPolicy === 'AllowAll';
  const all = view.endpointsOf(svc);
  if (all.length === 0) return { ok: false, why: `service ${key} has no endpoints` };

  const usable: Endpoint[] = [];
  let unhealthy = 0;
  for (const w of all) {
    if (w.status !== 'Healthy' && !allowUnhealthy) {
      unhealthy++;
      continue;
    }
    const ip = pickIp(w, svc, opts.family);
    if (ip === null) continue;
    if (opts.waypointMode) {
      // A waypoint Service need not declare the HBONE port if its pods use an app tunnel.
      if (!declared && !w.applicationTunnel) continue;
    } else if (!svc.ports[servicePort] && !hasOwnMapping(w, key, servicePort)) {
      // Target port 0 ("use the endpoint's mapping") needs an endpoint mapping.
      continue;
    }
    const tp = targetPortFor(w, svc, servicePort);
    if (tp === null) continue;
    usable.push({ workload: w, ip, targetPort: tp });
  }
  if (usable.length === 0) {
    const detail = unhealthy === all.length ? `all ${all.length} endpoints are unhealthy` : `none of its ${all.length} endpoints is healthy with a usable IP and a target port for ${servicePort}`;
    return { ok: false, why: `service ${key}: ${detail}` };
  }

  let ranked = usable;
  if (lb && (lb.mode === 'Failover' || lb.mode === 'Strict') && opts.src) {
    const src = opts.src;
    const prefs = lb.routingPreferences;
    let best = -1;
    const scored: { ep: Endpoint; rank: number }[] = [];
    for (const ep of usable) {
      const rank = localityRank(prefs, src, ep.workload);
      if (lb.mode === 'Strict' && rank !== prefs.length) continue;
      scored.push({ ep, rank });
      if (rank > best) best = rank;
    }
    ranked = scored.filter((s) => s.rank === best).map((s) => s.ep);
    if (ranked.length === 0) return { ok: false, why: `service ${key}: Strict locality (${prefs.join(', ')}) leaves no endpoint for this source` };
  }

  return { ok: true, endpoints: ranked };
}

/** How many leading routing preferences the endpoint shares with the source. */
export function localityRank(prefs: readonly Scope[], src: Workload, ep: Workload): number {
  let rank = 0;
  for (const scope of prefs) {
    if (!scopeMatches(scope, src, ep)) break;
    rank++;
  }
  return rank;
}

function scopeMatches(scope: Scope, a: Workload, b: Workload): boolean {
  switch (scope) {
    case 'Region':
      return a.locality.region === b.locality.region;
    case 'Zone':
      return a.locality.zone === b.locality.zone;
    case 'Subzone':
      return a.locality.subzone === b.locality.subzone;
    case 'Node':
      return a.node === b.node;
    case 'Cluster':
      return a.clusterId === b.clusterId;
    case 'Network':
      return a.network === b.network;
  }
}

/**
 * ztunnel's translate_service_port: the endpoint's own port map wins, then the Service's
 * target port (0 = unset), then — for workloads with an application tunnel port — the
 * service port unchanged; otherwise the endpoint is unusable for this port.
 */
export function targetPortFor(w: Workload, svc: Service, servicePort: number): number | null {
  const own = w.services[serviceKey(svc)]?.[servicePort];
  if (own !== undefined && own !== 0) return own;
  const svcTarget = svc.ports[servicePort];
  if (svcTarget !== undefined && svcTarget !== 0) return svcTarget;
  if (w.applicationTunnel && w.applicationTunnel.port !== null) return servicePort;
  return null;
}

function hasOwnMapping(w: Workload, key: string, servicePort: number): boolean {
  const own = w.services[key]?.[servicePort];
  return own !== undefined && own !== 0;
}

/** An IP of the request's family if the Service allows it, else another allowed family. */
export function pickIp(w: Workload, svc: Service | null, family: 4 | 6): string | null {
  const fams = svc?.ipFamilies === 'IPv4' ? [4] : svc?.ipFamilies === 'IPv6' ? [6] : family === 4 ? [4, 6] : [6, 4];
  for (const f of fams) {
    const ip = w.workloadIps.find((x) => (x.includes(':') ? 6 : 4) === f);
    if (ip !== undefined) return ip;
  }
  return null;
}

/** Random pick weighted by `weight` (items with weight 0 are never picked). */
export function weightedPick<T>(items: readonly T[], weight: (t: T) => number, random: () => number): T | undefined {
  let total = 0;
  for (const it of items) total += Math.max(0, weight(it));
  if (total <= 0) return undefined;
  let x = random() * total;
  for (const it of items) {
    const w = Math.max(0, weight(it));
    if (w === 0) continue;
    if (x < w) return it;
    x -= w;
  }
  // Floating-point edge (random() close to 1): the last positive-weight item.
  for (let i = items.length - 1; i >= 0; i--) if (weight(items[i] as T) > 0) return items[i];
  return undefined;
}
