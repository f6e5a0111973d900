import { LineCounter, isMap, isScalar, parseAllDocuments } from 'yaml';
import { YamlReader, type LocalConfigError } from '../../state/config/yaml-reader';
import { parseMeta } from './meta';
import { parsePolicySpec } from './policy-schema';
import { parseRouteSpec } from './route-schema';
import type { L7Config, L7Policy, RequestAuthn, Route, ServicePorts } from './types';
import { parseRequestAuthnSpec } from '../authn/schema';
import { parseServicePorts } from './service-ports';
import { TRAFFIC_KINDS, parseTrafficObject, type TrafficObject } from '../traffic/parse-objects';
import type { DestinationRule, LocalRateLimit, VirtualService } from '../traffic/types';

/** One error with the file it is in. */
export interface L7ConfigError extends LocalConfigError {
  readonly source: string;
}

export type L7ParseResult = { readonly ok: true; readonly value: L7Config } | { readonly ok: false; readonly errors: readonly L7ConfigError[] };

/** The kinds the waypoint reads, with the apiVersions accepted for each. */
const KINDS: Record<string, readonly string[]> = {
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1'],
  AuthorizationPolicy: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  RequestAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  Service: ['v1'],
  ...TRAFFIC_KINDS,
};

/**
 * Parses the waypoint's config: multi-document YAML files holding the objects a user
 * would `kubectl apply` (also `kind: List` with `items`). Known kinds are validated field
 * by field (unsupported fields are errors naming what is supported); other kinds are
 * skipped and reported in `ignoredKinds`. Every error carries file, line and column; any
 * error rejects the whole load so the caller keeps its last good config.
 */
export function parseL7Config(files: readonly { readonly text: string; readonly source: string }[]): L7ParseResult {
  const errors: L7ConfigError[] = [];
  const routes: Route[] = [];
  const policies: L7Policy[] = [];
  const services: ServicePorts[] = [];
  const requestAuthns: RequestAuthn[] = [];
  const traffic = { virtualServices: [] as VirtualService[], destinationRules: [] as DestinationRule[], rateLimits: [] as LocalRateLimit[] };
  const ignored = new Set<string>();
  const seen = new Map<string, string>();
  for (const f of files) {
    const lc = new LineCounter();
    const r = new YamlReader(lc);
    const docs = parseAllDocuments(f.text, { lineCounter: lc, prettyErrors: false });
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((doc, di) => {
      for (const e of doc.errors) {
        const p = lc.linePos(e.pos[0]);
        errors.push({ source: f.source, path: '', line: p.line, column: p.col, message: `not valid YAML: ${e.message.split('\n')[0]}` });
      }
      if (doc.errors.length > 0) return;
      const root = doc.contents;
      if (root === null || (isScalar(root) && root.value === null)) return;
      const items = listItems(r, root, `document ${di + 1}`);
      for (const it of items) {
        const obj = readObject(r, it.node, it.path, f.source);
        if (!obj) continue;
        if (obj.kind === 'ignored') {
          ignored.add(obj.what);
          continue;
        }
        const key = `${obj.value.kind === 'traffic' ? obj.value.object.kind : obj.value.kind}/${obj.value.meta.namespace}/${obj.value.meta.name}`;
        const prev = seen.get(key);
        if (prev) {
          r.error(it.node, it.path, `duplicate ${key} (also at ${prev})`);
          continue;
        }
        seen.set(key, obj.value.meta.source);
        if (obj.value.kind === 'AuthorizationPolicy') policies.push(obj.value.policy);
        else if (obj.value.kind === 'Service') services.push(obj.value.service);
        else if (obj.value.kind === 'RequestAuthentication') requestAuthns.push(obj.value.authn);
        else if (obj.value.kind === 'traffic') addTrafficObject(traffic, obj.value.object);
        else routes.push(obj.value.route);
      }
    });
    for (const e of r.errors) errors.push({ ...e, source: f.source });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { routes, policies, services, requestAuthns, ignoredKinds: [...ignored].sort(), traffic } };
}

/** A document is one object, or a `kind: List` whose items are objects. */
function listItems(r: YamlReader, root: NonNullable<ReturnType<typeof parseAllDocuments>[number]['contents']>, path: string): { node: typeof root; path: string }[] {
  if (isMap(root) && isScalar(root.get('kind', true)) && root.get('kind') === 'List') {
    const o = r.object(root, path, ['apiVersion', 'kind', 'items', 'metadata']);
    if (!o) return [];
    return r.list(o.get('items'), o.at('items'), 'objects', (n, p) => (n ? { node: n as typeof root, path: p } : undefined));
  }
  return [{ node: root, path }];
}

type ReadResult =
  | { kind: 'ignored'; what: string }
  | {
      kind: 'object';
      value:
        | { kind: 'AuthorizationPolicy'; meta: L7Policy['meta']; policy: L7Policy }
        | { kind: 'Service'; meta: ServicePorts['meta']; service: ServicePorts }
        | { kind: 'RequestAuthentication'; meta: RequestAuthn['meta']; authn: RequestAuthn }
        | { kind: 'traffic'; meta: ServicePorts['meta']; object: TrafficObject }
        | { kind: 'HTTPRoute' | 'GRPCRoute'; meta: Route['meta']; route: Route };
    };

function readObject(r: YamlReader, node: Parameters<YamlReader['object']>[0], path: string, source: string): ReadResult | undefined {
  if (!isMap(node)) {
    r.error(node, path, 'expected a Kubernetes object (apiVersion, kind, metadata, spec)');
    return undefined;
  }
  const kind = node.get('kind');
  const apiVersion = node.get('apiVersion');
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
    r.error(node, path, 'expected a Kubernetes object with string apiVersion and kind');
    return undefined;
  }
  const versions = KINDS[kind];
  const group = apiVersion.split('/')[0] ?? '';
  const known = versions?.some((v) => v.split('/')[0] === group);
  if (!versions || !known) return { kind: 'ignored', what: `${apiVersion}/${kind}` };
  const at = `${path} (${kind})`;
  const o = r.object(node, at, ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  if (!o) return undefined;
  if (!versions.includes(apiVersion)) {
    r.error(o.get('apiVersion'), o.at('apiVersion'), `${kind} ${JSON.stringify(apiVersion)} is not supported; supported: ${versions.join(', ')}`);
    return undefined;
  }
  const line = r.pos(node).line;
  const meta = parseMeta(r, o.get('metadata'), o.at('metadata'), source, line);
  if (!meta) return undefined;
  const specPath = `${kind} ${meta.namespace}/${meta.name}: spec`;
  if (kind === 'Service') {
    const service = parseServicePorts(r, o.get('spec'), specPath, meta);
    return service ? { kind: 'object', value: { kind, meta, service } } : undefined;
  }
  if (kind === 'RequestAuthentication') {
    const authn = parseRequestAuthnSpec(r, o.get('spec'), specPath, meta);
    return authn ? { kind: 'object', value: { kind, meta, authn } } : undefined;
  }
  if (kind in TRAFFIC_KINDS) {
    const object = parseTrafficObject(r, kind, o.get('spec'), specPath, meta);
    return object ? { kind: 'object', value: { kind: 'traffic', meta, object } } : undefined;
  }
  if (kind === 'AuthorizationPolicy') {
    const policy = parsePolicySpec(r, o.get('spec'), specPath, meta);
    return policy ? { kind: 'object', value: { kind, meta, policy } } : undefined;
  }
  const k = kind as 'HTTPRoute' | 'GRPCRoute';
  const route = parseRouteSpec(r, k, o.get('spec'), specPath, meta);
  return route ? { kind: 'object', value: { kind: k, meta, route } } : undefined;
}

function addTrafficObject(t: { virtualServices: VirtualService[]; destinationRules: DestinationRule[]; rateLimits: LocalRateLimit[] }, o: TrafficObject): void {
  if (o.kind === 'VirtualService') t.virtualServices.push(o.value);
  else if (o.kind === 'DestinationRule') t.destinationRules.push(o.value);
  else t.rateLimits.push(o.value);
}
