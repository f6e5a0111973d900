import { isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import type { FieldError, GatewayDraft, Normalized, VipDraft } from '../normalize';
import { show, type ObjectReader, type YamlReader, type YNode } from './yaml-reader';

/** A cross-reference checked once the whole file is read (waypoint → service, workload → policy). */
export interface PendingRef {
  readonly kind: 'service' | 'policy';
  readonly key: string;
  readonly path: string;
  readonly node: YNode;
  readonly what: string;
}

export interface ParseCtx {
  readonly r: YamlReader;
  readonly refs: PendingRef[];
}

/** Absent or null → undefined (the normaliser fills the default); otherwise read it. */
export function opt<T>(ctx: ParseCtx, node: YNode, read: (n: YNode) => T | undefined): T | undefined {
  return ctx.r.isNull(node) ? undefined : read(node);
}

/**
 * `"<network>/<ip>"` or `"<network>/<ip>/<len>"`; the network may be empty (`"/10.96.0.1"`).
 * Only the text form is checked here; whether the IP and prefix are valid is the normaliser's.
 */
export function parseNetworkAddress(ctx: ParseCtx, node: YNode, path: string, allowCidr: boolean): VipDraft | undefined {
  const s = ctx.r.string(node, path, { required: true });
  if (s === undefined) return undefined;
  const parts = s.split('/');
  const expected = allowCidr ? '"<network>/<ip>" or "<network>/<ip>/<prefix>" (network may be empty: "/10.96.0.1")' : '"<network>/<ip>" (network may be empty: "/10.0.0.1")';
  if (parts.length < 2 || parts.length > (allowCidr ? 3 : 2) || (parts.length === 3 && !/^\d{1,3}$/.test(parts[2]!))) {
    ctx.r.error(node, path, `${JSON.stringify(s)} is not a network address; expected ${expected}`);
    return undefined;
  }
  return { network: parts[0]!, ip: parts[1]!, ...(parts.length === 3 ? { prefixLen: Number(parts[2]) } : {}) };
}

export const GATEWAY_FIELDS = ['destination', 'hboneMtlsPort'] as const;

/**
 * `{destination: "<network>/<ip>" | {namespace, hostname}, hboneMtlsPort}`. A hostname
 * destination must name a Service in the same file (checked after the whole file is read).
 */
export function parseGateway(ctx: ParseCtx, node: YNode, path: string, what: string, extraFields: readonly string[] = []): { gw: GatewayDraft; extra: Map<string, YNode> } | undefined {
  const o = ctx.r.object(node, path, [...GATEWAY_FIELDS, ...extraFields]);
  if (!o) return undefined;
  const port = opt(ctx, o.get('hboneMtlsPort'), (n) => ctx.r.int(n, o.at('hboneMtlsPort'), 1, 65535, 'a port'));
  const withPort = port === undefined ? {} : { hboneMtlsPort: port };
  const dn = o.get('destination');
  const extra = new Map<string, YNode>(extraFields.map((f) => [f, o.get(f)]));
  if (ctx.r.isNull(dn)) {
    ctx.r.error(dn, o.at('destination'), 'required field is missing (expected "<network>/<ip>" or {namespace, hostname})', node);
    return undefined;
  }
  if (isScalar(dn)) {
    const a = parseNetworkAddress(ctx, dn, o.at('destination'), false);
    if (!a) return undefined;
    return { gw: { kind: 'address', network: a.network ?? '', ip: a.ip, ...withPort }, extra };
  }
  if (!isMap(dn)) {
    ctx.r.error(dn, o.at('destination'), `expected "<network>/<ip>" or {namespace, hostname}, got ${show(dn)}`);
    return undefined;
  }
  const h = ctx.r.object(dn, o.at('destination'), ['namespace', 'hostname']);
  if (!h) return undefined;
  const namespace = ctx.r.string(h.get('namespace'), h.at('namespace'), { required: true, owner: dn });
  const hostname = ctx.r.string(h.get('hostname'), h.at('hostname'), { required: true, owner: dn });
  if (namespace === undefined || hostname === undefined) return undefined;
  ctx.refs.push({ kind: 'service', key: `${namespace}/${hostname}`, path: o.at('destination'), node: dn, what });
  return { gw: { kind: 'hostname', namespace, hostname, ...withPort }, extra };
}

export function parseStringList(ctx: ParseCtx, node: YNode, path: string, what: string): string[] {
  return ctx.r.list(node, path, what, (n, p) => ctx.r.string(n, p, { required: true }));
}

/**
 * Hands a draft to the normaliser and reports its field errors at the YAML node each field
 * came from (so they carry a line and column like format errors). A field the reader has
 * already reported (e.g. a missing uid) is not reported twice.
 */
export function normalized<T>(ctx: ParseCtx, o: ObjectReader, result: Normalized<T>): T | undefined {
  if (result.ok) return result.value;
  for (const e of result.errors) {
    const path = e.field === '' ? o.path : o.path === '' ? e.field : `${o.path}${e.field.startsWith('[') ? '' : '.'}${e.field}`;
    if (ctx.r.errors.some((x) => x.path === path)) continue;
    const found = nodeAt(o.node, e);
    ctx.r.error(found, path, e.message, o.node);
  }
  return undefined;
}

/** The deepest node on a field's path (the owning map when the field is absent). */
function nodeAt(root: Node, e: FieldError): Node {
  let cur: Node = root;
  for (const seg of e.path) {
    let next: YNode;
    if (typeof seg === 'number' && isSeq(cur)) next = cur.items[seg] as YNode;
    else if (isMap(cur)) next = (cur.items as Pair<unknown, unknown>[]).find((p) => isScalar(p.key) && String(p.key.value) === String(seg))?.value as YNode;
    if (next === null || next === undefined) return cur;
    cur = next;
  }
  return cur;
}
