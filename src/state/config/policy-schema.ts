import { isMap, isScalar } from 'yaml';
import type { Authorization, Cidr, Match, ServiceAccountMatch, StringMatch } from '../types';
import { parseCidr } from '../../util/ip';
import { normalizePolicy } from '../normalize';
import { normalized, opt, type ParseCtx } from './common';
import { show, type YNode } from './yaml-reader';

const POLICY_FIELDS = ['name', 'namespace', 'scope', 'action', 'dryRun', 'rules'] as const;

const MATCH_FIELDS = [
  'namespaces',
  'notNamespaces',
  'principals',
  'notPrincipals',
  'serviceAccounts',
  'notServiceAccounts',
  'sourceIps',
  'notSourceIps',
  'destinationIps',
  'notDestinationIps',
  'destinationPorts',
  'notDestinationPorts',
] as const;

/**
 * Attributes only an L7 proxy can see. ztunnel (and istiod's translation) drop them, which
 * silently widens or narrows a policy; we refuse the whole file instead (fail closed), naming the field and where it can be enforced.
 */
const L7_FIELDS = new Set([
  'methods',
  'notMethods',
  'paths',
  'notPaths',
  'hosts',
  'notHosts',
  'requestPrincipals',
  'notRequestPrincipals',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'requestHeaders',
  'notRequestHeaders',
  'headers',
  'notHeaders',
  'when',
]);

function l7Message(key: string): string | null {
  if (!L7_FIELDS.has(key)) return null;
  return `${JSON.stringify(key)} is an L7 (HTTP) attribute and cannot be enforced at L4 by the node proxy; ` +
    'enforce it in a waypoint (AuthorizationPolicy with targetRefs to the waypoint) and keep only L4 fields here';
}

/** One entry of `policies[]` (ztunnel's Authorization; rules → clauses → matches); defaults and value checks are normalizePolicy's. */
export function parsePolicy(ctx: ParseCtx, node: YNode, path: string): Authorization | undefined {
  const r = ctx.r;
  const o = r.object(node, path, POLICY_FIELDS, (k) =>
    k === 'targetRefs' || k === 'targetRef'
      ? `${JSON.stringify(k)}: policies attached to a waypoint with targetRefs are enforced by that waypoint, not by the node proxy; remove it here`
      : null,
  );
  if (!o) return undefined;
  const before = r.errors.length;
  const owner = { owner: node };
  const name = r.string(o.get('name'), o.at('name'), { required: true, ...owner });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { required: true, ...owner });
  const scope = r.oneOf(o.get('scope'), o.at('scope'), ['Global', 'Namespace', 'WorkloadSelector'] as const);
  const action = r.oneOf(o.get('action'), o.at('action'), ['Allow', 'Deny'] as const);
  const dryRun = opt(ctx, o.get('dryRun'), (n) => r.bool(n, o.at('dryRun'), false));
  const rules = r.list(o.get('rules'), o.at('rules'), 'rules (each a list of clauses)', (rn, rp) =>
    r.list(rn, rp, 'clauses (each a list of matches)', (cn, cp) => r.list(cn, cp, 'matches', (mn, mp) => parseMatch(ctx, mn, mp))),
  );
  const p = normalized(ctx, o, normalizePolicy({ name, namespace, scope, action, dryRun, rules }));
  return r.errors.length === before ? p : undefined;
}

function parseMatch(ctx: ParseCtx, node: YNode, path: string): Match | undefined {
  const r = ctx.r;
  const o = r.object(node, path, MATCH_FIELDS, l7Message);
  if (!o) return undefined;
  const strings = (k: (typeof MATCH_FIELDS)[number]): StringMatch[] => r.list(o.get(k), o.at(k), 'string matches', (n, p) => parseStringMatch(ctx, n, p));
  const cidrs = (k: (typeof MATCH_FIELDS)[number]): Cidr[] =>
    r.list(o.get(k), o.at(k), 'CIDRs', (n, p) => {
      const s = r.string(n, p, { required: true });
      if (s === undefined) return undefined;
      const c = parseCidr(s);
      if (!c.ok) {
        r.error(n, p, c.message);
        return undefined;
      }
      return { ip: c.ip, prefixLen: c.prefixLen };
    });
  const ports = (k: (typeof MATCH_FIELDS)[number]): number[] => r.list(o.get(k), o.at(k), 'ports', (n, p) => r.int(n, p, 1, 65535, 'a port'));
  const sas = (k: (typeof MATCH_FIELDS)[number]): ServiceAccountMatch[] =>
    r.list(o.get(k), o.at(k), '{namespace, serviceAccount} entries', (n, p) => {
      const so = r.object(n, p, ['namespace', 'serviceAccount']);
      if (!so) return undefined;
      const namespace = r.string(so.get('namespace'), so.at('namespace'), { required: true, owner: n });
      const serviceAccount = r.string(so.get('serviceAccount'), so.at('serviceAccount'), { required: true, owner: n });
      return namespace === undefined || serviceAccount === undefined ? undefined : { namespace, serviceAccount };
    });
  return {
    namespaces: strings('namespaces'),
    notNamespaces: strings('notNamespaces'),
    principals: strings('principals'),
    notPrincipals: strings('notPrincipals'),
    serviceAccounts: sas('serviceAccounts'),
    notServiceAccounts: sas('notServiceAccounts'),
    sourceIps: cidrs('sourceIps'),
    notSourceIps: cidrs('notSourceIps'),
    destinationIps: cidrs('destinationIps'),
    notDestinationIps: cidrs('notDestinationIps'),
    destinationPorts: ports('destinationPorts'),
    notDestinationPorts: ports('notDestinationPorts'),
  };
}

const STRING_MATCH_FORMS = '{Exact: x}, {Prefix: x}, {Suffix: x} or Presence';

/** Tagged string matches as ztunnel serialises them: `{Exact: x}`… or `Presence` / `{Presence: {}}`. */
export function parseStringMatch(ctx: ParseCtx, node: YNode, path: string): StringMatch | undefined {
  const r = ctx.r;
  if (isScalar(node) && node.value === 'Presence') return { kind: 'Presence' };
  if (!isMap(node) || node.items.length !== 1) {
    r.error(node, path, `${show(node)} is not a string match; expected ${STRING_MATCH_FORMS}`);
    return undefined;
  }
  const pair = node.items[0]!;
  const tag = isScalar(pair.key) ? String(pair.key.value) : '';
  const v = pair.value as YNode;
  if (tag === 'Presence') {
    const emptyOk = r.isNull(v) || (isMap(v) && v.items.length === 0) || (v !== null && v !== undefined && 'items' in v && (v as { items: unknown[] }).items.length === 0);
    if (!emptyOk) {
      r.error(v, path, `Presence takes no value, got ${show(v)}`, node);
      return undefined;
    }
    return { kind: 'Presence' };
  }
  if (tag !== 'Exact' && tag !== 'Prefix' && tag !== 'Suffix') {
    r.error(pair.key as YNode, path, `${JSON.stringify(tag)} is not a string match kind; expected ${STRING_MATCH_FORMS}`, node);
    return undefined;
  }
  const s = r.string(v, `${path}.${tag}`, { def: '' });
  if (s === undefined) return undefined;
  return { kind: tag, value: s };
}
