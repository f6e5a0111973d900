import type { Service } from '../../state/types';
import type { BackendRef, NamedMatch, ObjectRef, Route, RouteMatch, RouteRule } from '../config/types';
import type { L7Request } from './request';

/** Who this waypoint is (the Gateway that routes and policies attach to). */
export interface WaypointName {
  readonly name: string;
  readonly namespace: string;
}

/** The rule that decides a request, with the match that selected it. */
export interface RouteDecision {
  readonly route: Route;
  readonly rule: RouteRule;
  readonly match: RouteMatch;
}

/**
 * Routes that apply to traffic for `svc` on `port`: those attached to the Service (all
 * ports, or this one). When none is, routes attached to the waypoint Gateway whose
 * hostnames (if any) cover the Service's hostname. Producer routes on the Service are more
 * specific than the waypoint-wide ones, so they are not mixed.
 */
export function attachedRoutes(routes: readonly Route[], svc: Service, port: number, wp: WaypointName): Route[] {
  const onService = routes.filter((r) => r.parents.some((p) => refersToService(p, svc, port)));
  if (onService.length > 0) return onService;
  return routes.filter((r) => r.parents.some((p) => refersToWaypoint(p, wp)) && (r.hostnames.length === 0 || r.hostnames.some((h) => hostnameMatches(h, svc.hostname))));
}

export function refersToService(p: ObjectRef, svc: Pick<Service, 'name' | 'namespace'>, port: number | null): boolean {
  return p.kind === 'Service' && p.name === svc.name && p.namespace === svc.namespace && (p.port === null || port === null || p.port === port);
}

export function refersToWaypoint(p: ObjectRef, wp: WaypointName): boolean {
  return p.kind === 'Gateway' && p.name === wp.name && p.namespace === wp.namespace;
}

function hostnameMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase();
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
  return h === pattern;
}

/**
 * The Gateway API's choice among matching rules. First the route hostname that matched the
 * destination (more characters of a non-wildcard hostname, then of any hostname). Then, for
 * GRPCRoutes (GRPCRoute's own rules): more characters of the matching service, then of the
 * method, then more header matches. Otherwise (HTTPRoute's rules): Exact path, then
 * RegularExpression, then PathPrefix (longer values first within a type), then a method
 * match, then more header matches, then more query-parameter matches. Ties go to the oldest
 * route, then by "namespace/name", then to the earlier rule and match. Null = no rule matches.
 * `hostname`: the destination Service's hostname the route hostnames are ranked against.
 */
export function selectRoute(routes: readonly Route[], req: L7Request, hostname = ''): RouteDecision | null {
  let best: Candidate | null = null;
  let query: URLSearchParams | null = null;
  for (const route of routes) {
    let host: HostRank | null = null;
    for (const rule of route.rules) {
      for (const match of rule.matches) {
        if (!pathMatches(match, req.path)) continue;
        if (match.method !== null && match.method !== req.method) continue;
        if (!match.headers.every((h) => valueMatches(h, req.headers[h.name]))) continue;
        if (match.queryParams.length > 0) {
          query ??= new URLSearchParams(req.query);
          const q = query;
          if (!match.queryParams.every((m) => valueMatches(m, q.get(m.name) ?? undefined))) continue;
        }
        host ??= hostRank(route.hostnames, hostname);
        const cand: Candidate = { route, rule, match, host };
        if (best === null || compareCandidates(cand, best) < 0) best = cand;
      }
    }
  }
  return best && { route: best.route, rule: best.rule, match: best.match };
}

/** Characters of the matching non-wildcard route hostname and of any matching one (0 when the route names none). */
interface HostRank {
  readonly exact: number;
  readonly any: number;
}

interface Candidate extends RouteDecision {
  readonly host: HostRank;
}

function hostRank(hostnames: readonly string[], hostname: string): HostRank {
  let exact = 0;
  let any = 0;
  if (!hostname) return { exact, any };
  for (const h of hostnames) {
    if (!hostnameMatches(h, hostname)) continue;
    if (!h.startsWith('*.')) exact = Math.max(exact, h.length);
    any = Math.max(any, h.length);
  }
  return { exact, any };
}

const PATH_RANK = { Exact: 3, RegularExpression: 2, PathPrefix: 1 } as const;

/** Negative when `a` takes precedence over `b`. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  const ma = a.match;
  const mb = b.match;
  const ga = ma.grpc;
  const gb = mb.grpc;
  const specific =
    ga && gb
      ? gb.service.length - ga.service.length || gb.method.length - ga.method.length || mb.headers.length - ma.headers.length
      : PATH_RANK[mb.path.type] - PATH_RANK[ma.path.type] ||
        mb.path.value.length - ma.path.value.length ||
        Number(mb.method !== null) - Number(ma.method !== null) ||
        mb.headers.length - ma.headers.length ||
        mb.queryParams.length - ma.queryParams.length;
  return (
    b.host.exact - a.host.exact ||
    b.host.any - a.host.any ||
    specific ||
    (a.route.meta.createdMs ?? Infinity) - (b.route.meta.createdMs ?? Infinity) ||
    cmp(`${a.route.meta.namespace}/${a.route.meta.name}`, `${b.route.meta.namespace}/${b.route.meta.name}`) ||
    cmp(a.route.kind, b.route.kind) ||
    a.rule.index - b.rule.index ||
    a.rule.matches.indexOf(ma) - b.rule.matches.indexOf(mb)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** PathPrefix matches whole path elements: "/foo" matches "/foo" and "/foo/x", not "/foobar". */
export function pathMatches(m: RouteMatch, path: string): boolean {
  const p = m.path;
  switch (p.type) {
    case 'Exact':
      return path === p.value;
    case 'PathPrefix':
      return p.value === '/' || path === p.value || path.startsWith(`${p.value}/`);
    case 'RegularExpression':
      return p.re.test(path);
  }
}

function valueMatches(m: NamedMatch, v: string | undefined): boolean {
  if (v === undefined) return false;
  return m.match.type === 'Exact' ? v === m.match.value : m.match.re.test(v);
}

/** A weighted pick among backends with weight > 0; null when none has weight. */
export function pickBackend(backends: readonly BackendRef[], random: () => number): BackendRef | null {
  let total = 0;
  for (const b of backends) total += b.weight;
  if (total <= 0) return null;
  let x = random() * total;
  for (const b of backends) {
    if (b.weight <= 0) continue;
    if (x < b.weight) return b;
    x -= b.weight;
  }
  return backends.filter((b) => b.weight > 0).at(-1) ?? null;
}
