import { sendJson, type Handler } from '../admin/http-util';
import { SpiffeId } from '../identity/spiffe';
import { parseSocketAddr } from '../util/socket-addr';
import type { Service } from '../state/types';
import type { StateView } from '../state/view';
import { gatewayIsWorkload } from '../state/waypoint';
import type { L7Config } from './config/types';
import { decideRequest, type L7Target } from './l7/decide';
import { policiesFor } from './l7/authz';
import { splitPathQuery } from './l7/request';
import { attachedRoutes, type WaypointName } from './l7/route-select';
import { explainAuthn } from './authn/explain';
import type { RequestAuth } from './authn/request-authn';
import { explainTraffic } from './traffic/explain';

export interface ExplainEnv {
  readonly state: StateView;
  readonly config: L7Config;
  readonly waypoint: WaypointName;
  readonly network: string;
  readonly clusterDomain: string;
  /** Request authentication, to explain which jwtRule applies to the request's token. */
  readonly authn?: RequestAuth;
}

/** The Services whose waypoint (or one of their weighted waypoints) is this waypoint's pod. */
export function boundServices(state: StateView, instanceIp: string | null, network: string): Service[] {
  const me = instanceIp ? state.findWorkloadByAddr({ network, ip: instanceIp }) : undefined;
  if (!me) return [];
  return state.allServices().filter((s) => [s.waypoint, ...s.weightedWaypoints.map((w) => w.destination)].some((g) => g !== null && gatewayIsWorkload(state, g, me)));
}

/** /config_dump section "l7": routes, policies and, per bound Service port, what applies. */
export function l7Dump(state: StateView, config: L7Config, wp: WaypointName, network: string, instanceIp: string | null): unknown {
  const bound = boundServices(state, instanceIp, network);
  return {
    waypoint: wp,
    routes: config.routes.map((r) => ({ kind: r.kind, name: `${r.meta.namespace}/${r.meta.name}`, source: r.meta.source, parents: r.parents, hostnames: r.hostnames, rules: r.rules.length })),
    policies: config.policies.map((p) => ({ name: `${p.meta.namespace}/${p.meta.name}`, source: p.meta.source, action: p.action, targets: p.targets, rules: p.rules.length })),
    requestAuthentications: config.requestAuthns.map((a) => ({ name: `${a.meta.namespace}/${a.meta.name}`, source: a.meta.source, targets: a.targets, jwtRules: a.rules.map((r) => ({ id: r.id, issuer: r.issuer, audiences: r.audiences, keys: r.keys.kind === 'inline' ? 'inline jwks' : `${r.keys.kind} ${r.keys.uri}` })) })),
    bindings: bound.map((s) => ({
      service: `${s.namespace}/${s.hostname}`,
      ports: Object.keys(s.ports).map((port) => ({
        port: Number(port),
        routes: attachedRoutes(config.routes, s, Number(port), wp).map((r) => `${r.kind}/${r.meta.namespace}/${r.meta.name}`),
      })),
      policies: policiesFor(config.policies, s, wp).map((p) => `${p.meta.namespace}/${p.meta.name} (${p.action})`),
    })),
  };
}

/**
 * GET /debug/explain?dst=<ip:port>&path=/x[&method=GET][&host=h][&header=name:value]…
 * [&src=<spiffe id>][&srcIp=<ip>]: which policy, route and backend decide that request.
 */
export function explainRequestHandler(env: () => ExplainEnv, send: typeof sendJson): Handler {
  return async (_req, res, url) => {
    const q = url.searchParams;
    const dst = parseSocketAddr(q.get('dst') ?? '');
    if (!dst) return send(res, 400, { error: 'query parameter dst=<ip:port> (the Service VIP or workload address the client dialled) is required; path, method, host, header=name:value, src=<spiffe id>, srcIp optional' });
    const e = env();
    const svc = e.state.findServiceByVip({ network: e.network, ip: dst.ip });
    const wl = svc ? undefined : e.state.findWorkloadByAddr({ network: e.network, ip: dst.ip });
    const target: L7Target | null = svc ? { kind: 'service', service: svc, port: dst.port } : wl ? { kind: 'workload', workload: wl, ip: dst.ip, port: dst.port } : null;
    if (!target) return send(res, 404, { error: `${dst.ip} is neither a Service VIP nor a workload address` });
    const src = q.get('src');
    const id = src ? SpiffeId.tryParse(src) : null;
    if (src && !id) return send(res, 400, { error: `src ${JSON.stringify(src)} is not a SPIFFE id` });
    const headers: Record<string, string> = {};
    for (const h of q.getAll('header')) {
      const i = h.indexOf(':');
      if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const { path, query } = splitPathQuery(q.get('path') ?? '/');
    const host = (q.get('host') ?? (svc ? svc.hostname : `${dst.ip}:${dst.port}`)).toLowerCase();
    const srcIp = q.get('srcIp') ?? '0.0.0.0';
    const request = { method: (q.get('method') ?? 'GET').toUpperCase(), path, query, host, headers };
    const authn = await explainAuthn(e.authn, e.config, svc ?? null, request);
    if (authn.outcome) return send(res, 200, { target: svc ? `service ${svc.namespace}/${svc.hostname}:${dst.port}` : `workload ${wl?.uid}`, authentication: authn.report, outcome: 'unauthenticated', response: authn.outcome });
    const d = decideRequest({
      state: e.state,
      config: e.config,
      waypoint: e.waypoint,
      network: e.network,
      clusterDomain: e.clusterDomain,
      target,
      request: authn.identity ? { ...request, auth: authn.identity } : request,
      peer: { sourceIp: srcIp, remoteIp: srcIp, principal: id ? id.principal() : '', namespace: id ? id.namespace : '', destinationIp: dst.ip, destinationPort: dst.port },
      srcWorkload: null,
      random: Math.random,
      pickEndpoint: false,
    });
    const out: Record<string, unknown> = {
      target: svc ? `service ${svc.namespace}/${svc.hostname}:${dst.port}` : `workload ${wl?.uid}`,
      ...(authn.report ? { authentication: authn.report } : {}),
      authorization: { allowed: d.authz.allowed, policy: d.authz.policy, why: d.authz.why, audited: d.authz.audited },
      route: d.route ? { kind: d.route.route.kind, name: `${d.route.route.meta.namespace}/${d.route.route.meta.name}`, rule: d.route.rule.index, source: d.route.route.meta.source } : null,
      outcome: d.kind,
    };
    if (d.kind === 'deny') out['response'] = { status: 403, body: 'RBAC: access denied' };
    if (d.kind === 'local') out['response'] = { status: d.status, flags: d.flags, details: d.details };
    if (d.kind === 'redirect') out['response'] = { status: d.status, location: d.location };
    if (d.kind === 'forward') {
      out['backend'] = d.backend ? { service: `${d.backend.namespace}/${d.backend.hostname}`, port: d.backendPort } : { workload: wl?.uid, port: d.backendPort };
      out['forwarded'] = { path: d.path, host: d.host, timeoutMs: d.timeoutMs, mirror: d.mirror ? `${d.mirror.backend.namespace}/${d.mirror.backend.name}:${d.mirror.backend.port} (${d.mirror.percent}%)` : null };
      out['details'] = d.details;
      if (d.route && d.route.rule.backends.length > 1) out['weights'] = d.route.rule.backends.map((b) => ({ backend: `${b.namespace}/${b.name}:${b.port}`, weight: b.weight }));
    }
    out['traffic'] = explainTraffic({ config: e.config, state: e.state, clusterDomain: e.clusterDomain, target, decision: d, request: { method: (q.get('method') ?? 'GET').toUpperCase(), path, query, host, headers }, peer: { sourceIp: srcIp, remoteIp: srcIp, principal: id ? id.principal() : '', namespace: id ? id.namespace : '', destinationIp: dst.ip, destinationPort: dst.port }, random: Math.random });
    return send(res, 200, out);
  };
}
