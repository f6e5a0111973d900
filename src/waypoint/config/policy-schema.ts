import { parseCidr, canonicalIp } from '../../util/ip';
import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import { parseRef } from './meta';
import { AUTH_WHEN_KEYS, authConditionKey } from '../authn/claims';
import type { Cidr, Condition, ConditionKey, IstioMatch, L7Policy, ObjectMeta, OperationMatch, PolicyRule, SourceMatch } from './types';

const SPEC_FIELDS = ['targetRefs', 'targetRef', 'action', 'rules'];
const SPEC_UNSUPPORTED: Record<string, string> = {
  selector: 'policies with a selector are enforced by the node proxy, not the waypoint; attach this policy with targetRefs (kind Gateway = the waypoint, or kind Service)',
  provider: 'action CUSTOM (external authorization providers) is not supported by this waypoint; supported actions: ALLOW, DENY, AUDIT',
};
const SOURCE_FIELDS = ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'];
const SOURCE_UNSUPPORTED = new Set(['serviceAccounts', 'notServiceAccounts']);
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'];
const WHEN_KEYS = `request.headers[<name>], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port, ${AUTH_WHEN_KEYS}`;

/** The spec of an L7 AuthorizationPolicy (security.istio.io/v1) attached with targetRefs. */
export function parsePolicySpec(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): L7Policy | undefined {
  const o = r.object(node, path, SPEC_FIELDS, (k) => SPEC_UNSUPPORTED[k] ?? null);
  if (!o) return undefined;
  const refOpts = { allowPort: false, allowSection: false };
  const targets = [
    ...r.list(o.get('targetRefs'), o.at('targetRefs'), 'targetRefs', (n, p) => parseRef(r, n, p, meta.namespace, refOpts)),
    ...(r.isNull(o.get('targetRef')) ? [] : [parseRef(r, o.get('targetRef'), o.at('targetRef'), meta.namespace, refOpts)].filter((x) => x !== undefined)),
  ];
  if (r.isNull(o.get('targetRefs')) && r.isNull(o.get('targetRef'))) {
    r.error(node, path, 'targetRefs is required: the waypoint applies policies attached to the waypoint Gateway or to a Service (policies without targetRefs are enforced by node proxies)');
  }
  const action = r.oneOf(o.get('action'), o.at('action'), ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const, 'ALLOW');
  if (action === 'CUSTOM') {
    r.error(o.get('action'), o.at('action'), SPEC_UNSUPPORTED['provider'] as string);
    return undefined;
  }
  const rules = r.list(o.get('rules'), o.at('rules'), 'rules', (n, p) => parseRule(r, n, p));
  if (action === undefined) return undefined;
  return { meta, targets, action, rules };
}

function parseRule(r: YamlReader, n: YNode, p: string): PolicyRule | undefined {
  const o = r.object(n, p, ['from', 'to', 'when']);
  if (!o) return undefined;
  const from = r.list(o.get('from'), o.at('from'), 'from entries', (fn, fp) => {
    const fo = r.object(fn, fp, ['source']);
    return fo ? parseSource(r, fo.get('source'), fo.at('source')) : undefined;
  });
  const to = r.list(o.get('to'), o.at('to'), 'to entries', (tn, tp) => {
    const to = r.object(tn, tp, ['operation']);
    return to ? parseOperation(r, to.get('operation'), to.at('operation')) : undefined;
  });
  const when = r.list(o.get('when'), o.at('when'), 'conditions', (wn, wp) => parseCondition(r, wn, wp));
  return { from, to, when };
}

function parseSource(r: YamlReader, n: YNode, p: string): SourceMatch | undefined {
  const o = r.object(n, p, SOURCE_FIELDS, (k) =>
    SOURCE_UNSUPPORTED.has(k) ? `${k} is not supported by this waypoint; supported source fields: ${SOURCE_FIELDS.join(', ')}` : null,
  );
  if (!o) return undefined;
  const m = (k: string): IstioMatch[] => matches(r, o.get(k), o.at(k));
  const c = (k: string): Cidr[] => cidrs(r, o.get(k), o.at(k));
  const s: SourceMatch = {
    principals: m('principals'),
    notPrincipals: m('notPrincipals'),
    requestPrincipals: m('requestPrincipals'),
    notRequestPrincipals: m('notRequestPrincipals'),
    namespaces: m('namespaces'),
    notNamespaces: m('notNamespaces'),
    ipBlocks: c('ipBlocks'),
    notIpBlocks: c('notIpBlocks'),
    remoteIpBlocks: c('remoteIpBlocks'),
    notRemoteIpBlocks: c('notRemoteIpBlocks'),
  };
  if (Object.values(s).every((v: readonly unknown[]) => v.length === 0)) r.error(n, p, `an empty source is not allowed; set at least one of ${SOURCE_FIELDS.join(', ')}`);
  return s;
}

function parseOperation(r: YamlReader, n: YNode, p: string): OperationMatch | undefined {
  const o = r.object(n, p, OPERATION_FIELDS);
  if (!o) return undefined;
  const m = (k: string): IstioMatch[] => matches(r, o.get(k), o.at(k));
  const ports = (k: string): number[] => r.list(o.get(k), o.at(k), 'ports', (pn, pp) => r.int(pn, pp, 1, 65535, 'a port'));
  const op: OperationMatch = {
    hosts: m('hosts').map(lowerMatch),
    notHosts: m('notHosts').map(lowerMatch),
    ports: ports('ports'),
    notPorts: ports('notPorts'),
    methods: m('methods'),
    notMethods: m('notMethods'),
    paths: m('paths'),
    notPaths: m('notPaths'),
  };
  if (Object.values(op).every((v: readonly unknown[]) => v.length === 0)) r.error(n, p, `an empty operation is not allowed; set at least one of ${OPERATION_FIELDS.join(', ')}`);
  return op;
}

function lowerMatch(m: IstioMatch): IstioMatch {
  return m.kind === 'Presence' ? m : { kind: m.kind, value: m.value.toLowerCase() };
}

function parseCondition(r: YamlReader, n: YNode, p: string): Condition | undefined {
  const o = r.object(n, p, ['key', 'values', 'notValues']);
  if (!o) return undefined;
  const keyText = r.string(o.get('key'), o.at('key'), { required: true, owner: n });
  const values = r.list(o.get('values'), o.at('values'), 'values', (vn, vp) => r.string(vn, vp, { required: true }));
  const notValues = r.list(o.get('notValues'), o.at('notValues'), 'values', (vn, vp) => r.string(vn, vp, { required: true }));
  if (keyText === undefined) return undefined;
  if (values.length === 0 && notValues.length === 0) {
    r.error(n, p, 'at least one of values and notValues must be set');
    return undefined;
  }
  const key = conditionKey(keyText);
  if (!key) {
    r.error(o.get('key'), o.at('key'), `${JSON.stringify(keyText)} is not a supported condition key; supported: ${WHEN_KEYS}`);
    return undefined;
  }
  const all = [...values, ...notValues];
  if (key.kind === 'source.ip' || key.kind === 'remote.ip' || key.kind === 'destination.ip') {
    for (const v of all) if (!parseCidr(v).ok) r.error(o.node, p, `${JSON.stringify(v)} is not an IP address or CIDR (key ${keyText})`);
  }
  if (key.kind === 'destination.port') {
    for (const v of all) if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) r.error(o.node, p, `${JSON.stringify(v)} is not a port (key ${keyText})`);
  }
  return { key, keyText, values, notValues };
}

function conditionKey(k: string): ConditionKey | null {
  const h = /^request\.headers\[([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\]$/.exec(k);
  if (h) return { kind: 'request.headers', name: (h[1] as string).toLowerCase() };
  if (k === 'source.ip' || k === 'remote.ip' || k === 'destination.ip') return { kind: k };
  if (k === 'source.namespace' || k === 'source.principal' || k === 'destination.port') return { kind: k };
  return authConditionKey(k);
}

/** Istio's string forms: `*` presence, `abc*` prefix, `*abc` suffix, else exact. */
export function istioMatch(s: string): IstioMatch {
  if (s === '*') return { kind: 'Presence' };
  if (s.endsWith('*')) return { kind: 'Prefix', value: s.slice(0, -1) };
  if (s.startsWith('*')) return { kind: 'Suffix', value: s.slice(1) };
  return { kind: 'Exact', value: s };
}

function matches(r: YamlReader, n: YNode, p: string): IstioMatch[] {
  return r.list(n, p, 'strings', (vn, vp) => {
    const s = r.string(vn, vp, { required: true });
    if (s === undefined) return undefined;
    if (s.length > 1 && s.slice(1, -1).includes('*')) {
      r.error(vn, vp, `${JSON.stringify(s)}: "*" is only allowed at the start or the end (exact, prefix*, *suffix or *)`);
      return undefined;
    }
    return istioMatch(s);
  });
}

function cidrs(r: YamlReader, n: YNode, p: string): Cidr[] {
  return r.list(n, p, 'IPs or CIDRs', (vn, vp) => {
    const s = r.string(vn, vp, { required: true });
    if (s === undefined) return undefined;
    const c = parseCidr(s);
    if (!c.ok) {
      r.error(vn, vp, `${JSON.stringify(s)}: ${c.message}`);
      return undefined;
    }
    return { ip: canonicalIp(c.ip) ?? c.ip, prefixLen: c.prefixLen };
  });
}
