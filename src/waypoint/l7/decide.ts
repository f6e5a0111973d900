import { pickServiceEndpoint, type ServiceEndpoint } from '../../state/service-endpoint';
import type { Service, Workload } from '../../state/types';
import type { StateView } from '../../state/view';
import { workloadIdentity } from '../../identity/spiffe';
import type { BackendRef, HeaderModifier, L7Config, RouteFilter } from '../config/types';
import { authorizeRequest, policiesFor, type L7AuthzDecision } from './authz';
import { redirectLocation, modifyPath } from './filters';
import type { L7Peer, L7Request } from './request';
import { attachedRoutes, pickBackend, selectRoute, type RouteDecision, type WaypointName } from './route-select';

/** What the request was addressed to: a Service (VIP:port) or a workload (podIP:port). */
export type L7Target = { readonly kind: 'service'; readonly service: Service; readonly port: number } | { readonly kind: 'workload'; readonly workload: Workload; readonly ip: string; readonly port: number };

/** An endpoint to forward to: a Service endpoint, or the addressed workload itself. */
export type Endpoint = Pick<ServiceEndpoint, 'workload' | 'ip' | 'targetPort' | 'expectedIdentities' | 'hbone'> & { readonly service: Service | null };

export interface DecideInput {
  readonly state: StateView;
  readonly config: L7Config;
  readonly waypoint: WaypointName;
  readonly network: string;
  readonly clusterDomain: string;
  readonly target: L7Target;
  readonly request: L7Request;
  readonly peer: L7Peer;
  readonly srcWorkload: Workload | null;
  readonly random: () => number;
  /** Pick a concrete endpoint (the data path); explain may skip it. */
  readonly pickEndpoint: boolean;
}

interface Common {
  readonly authz: L7AuthzDecision;
  readonly route: RouteDecision | null;
  /** Service the request is charged to when no backend was chosen. */
  readonly service: Service | null;
}

/** Envoy's response flags used here: NR no route, UH no healthy upstream. */
export type L7Decision =
  | (Common & { readonly kind: 'deny' })
  | (Common & { readonly kind: 'redirect'; readonly status: number; readonly location: string; readonly responseHeaders: readonly HeaderModifier[] })
  | (Common & { readonly kind: 'local'; readonly status: number; readonly flags: string; readonly body: string; readonly details: string })
  | (Common & {
      readonly kind: 'forward';
      readonly backend: Service | null;
      readonly endpoint: Endpoint | null;
      readonly backendPort: number;
      /** Path and query as forwarded (after URLRewrite). */
      readonly path: string;
      readonly host: string;
      readonly requestHeaders: readonly HeaderModifier[];
      readonly responseHeaders: readonly HeaderModifier[];
      readonly mirror: { readonly backend: BackendRef; readonly percent: number } | null;
      readonly timeoutMs: number | null;
      readonly details: string;
    });

/**
 * The whole L7 decision for one request, pure over the state and config: L7 authorization
 * (403 when denied), then the route (routes attached to the Service; none attached → the
 * Service itself; attached but none matching → 404 NR), its filters, a weighted backend
 * (none usable → 500) and an endpoint (none healthy → 503 UH). Workload-addressed
 * traffic has no routes: it goes to that workload.
 */
export function decideRequest(i: DecideInput): L7Decision {
  const svc = i.target.kind === 'service' ? i.target.service : null;
  const authz = authorizeRequest(policiesFor(i.config.policies, svc, i.waypoint), i.request, i.peer);
  const base = { authz, route: null, service: svc };
  if (!authz.allowed) return { ...base, kind: 'deny' };
  if (i.target.kind === 'workload') {
    const w = i.target.workload;
    const endpoint: Endpoint = { workload: w, service: null, ip: i.target.ip, targetPort: i.target.port, expectedIdentities: [workloadIdentity(w).toString()], hbone: w.protocol === 'HBONE' };
    return forward(base, null, endpoint, i.target.port, { ...i.request, path: target(i.request) }, [], [], null, null, 'workload-addressed: forwarded to the workload itself');
  }
  const port = i.target.port;
  const routes = attachedRoutes(i.config.routes, i.target.service, port, i.waypoint);
  if (routes.length === 0) return toBackend(i, base, i.target.service, port, null, [], [], null, null, 'no route attached: the Service itself');
  const route = selectRoute(routes, i.request, i.target.service.hostname);
  if (!route) return { ...base, kind: 'local', status: 404, flags: 'NR', body: '', details: 'route_not_found' };
  const withRoute = { ...base, route };
  const reqMods: HeaderModifier[] = [];
  const resMods: HeaderModifier[] = [];
  let path = i.request.path;
  let host = i.request.host;
  let mirror: { backend: BackendRef; percent: number } | null = null;
  for (const f of route.rule.filters) {
    if (f.type === 'RequestHeaderModifier') reqMods.push(f.modifier);
    else if (f.type === 'ResponseHeaderModifier') resMods.push(f.modifier);
    else if (f.type === 'RequestMirror') mirror = { backend: f.backend, percent: f.percent };
    else if (f.type === 'URLRewrite') ({ path, host } = rewrite(f, path, host, route));
    else if (f.type === 'RequestRedirect') {
      const location = redirectLocation(f, { host: i.request.host, path: i.request.path, query: i.request.query, scheme: 'http' }, route.match);
      return { ...withRoute, kind: 'redirect', status: f.statusCode, location, responseHeaders: resMods };
    }
  }
  const timeoutMs = minNonNull(route.rule.requestTimeoutMs, route.rule.backendTimeoutMs);
  const ref = pickBackend(route.rule.backends, i.random);
  const at = `${route.route.kind} ${route.route.meta.namespace}/${route.route.meta.name} rule ${route.rule.index}`;
  if (!ref) return { ...withRoute, kind: 'local', status: 500, flags: '-', body: '', details: `${at} has no backend with weight` };
  const backend = findService(i.state, ref.name, ref.namespace, i.clusterDomain);
  if (!backend) return { ...withRoute, kind: 'local', status: 500, flags: '-', body: '', details: `${at}: backend Service ${ref.namespace}/${ref.name} is not known` };
  return toBackend(i, withRoute, backend, ref.port, route, reqMods, resMods, mirror, timeoutMs, `${at} → ${backend.namespace}/${backend.name}:${ref.port}`, { path: target({ ...i.request, path }), host });
}

function toBackend(
  i: DecideInput,
  base: Common,
  backend: Service,
  port: number,
  route: RouteDecision | null,
  reqMods: HeaderModifier[],
  resMods: HeaderModifier[],
  mirror: { backend: BackendRef; percent: number } | null,
  timeoutMs: number | null,
  details: string,
  rewritten?: { path: string; host: string },
): L7Decision {
  const withRoute = { ...base, route };
  let endpoint: Endpoint | null = null;
  if (i.pickEndpoint) {
    const family = i.peer.destinationIp.includes(':') ? 6 : 4;
    const ep = pickServiceEndpoint(i.state, backend, port, { src: i.srcWorkload, network: i.network, family, random: i.random });
    if (!ep.ok) return { ...withRoute, service: backend, kind: 'local', status: 503, flags: 'UH', body: 'no healthy upstream', details: ep.message };
    endpoint = ep;
  }
  const path = rewritten?.path ?? target(i.request);
  return forward(withRoute, backend, endpoint, port, { ...i.request, path, host: rewritten?.host ?? i.request.host }, reqMods, resMods, mirror, timeoutMs, details);
}

function forward(
  base: Common,
  backend: Service | null,
  endpoint: Endpoint | null,
  port: number,
  req: L7Request,
  reqMods: HeaderModifier[],
  resMods: HeaderModifier[],
  mirror: { backend: BackendRef; percent: number } | null,
  timeoutMs: number | null,
  details: string,
): L7Decision {
  return { ...base, kind: 'forward', backend, endpoint, backendPort: port, path: req.path, host: req.host, requestHeaders: reqMods, responseHeaders: resMods, mirror, timeoutMs, details };
}

/** The request target as forwarded: path plus query. */
function target(r: L7Request): string {
  return r.query ? `${r.path}?${r.query}` : r.path;
}

function rewrite(f: Extract<RouteFilter, { type: 'URLRewrite' }>, path: string, host: string, route: RouteDecision): { path: string; host: string } {
  return { path: f.path ? modifyPath(path, f.path, route.match) : path, host: f.hostname ?? host };
}

function minNonNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** A backendRef's Service: `<name>.<ns>.svc.<domain>` first, else by name and namespace. */
export function findService(state: StateView, name: string, namespace: string, clusterDomain: string): Service | undefined {
  return state.findServiceByHostname(namespace, `${name}.${namespace}.svc.${clusterDomain}`) ?? state.allServices().find((s) => s.name === name && s.namespace === namespace);
}
