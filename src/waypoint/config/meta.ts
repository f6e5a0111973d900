import { isMap, isScalar, type Node } from 'yaml';
import { show, type ObjectReader, type YamlReader, type YNode } from '../../state/config/yaml-reader';
import type { ObjectMeta, ObjectRef } from './types';

/** Fields of `metadata` that Kubernetes fills in or users write; only name, namespace and creationTimestamp are read. */
const METADATA_FIELDS = ['name', 'namespace', 'creationTimestamp', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'managedFields', 'ownerReferences', 'finalizers', 'generateName'];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function parseMeta(r: YamlReader, node: YNode, path: string, source: string, line: number): ObjectMeta | undefined {
  const o = r.object(node, path, METADATA_FIELDS);
  if (!o) return undefined;
  const name = r.string(o.get('name'), o.at('name'), { required: true, owner: node });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { def: 'default' });
  if (name !== undefined && !DNS_SUBDOMAIN.test(name)) r.error(o.get('name'), o.at('name'), `${JSON.stringify(name)} is not a valid object name (lower-case DNS subdomain)`);
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) r.error(o.get('namespace'), o.at('namespace'), `${JSON.stringify(namespace)} is not a valid namespace (lower-case DNS label)`);
  let createdMs: number | null = null;
  const ts = o.get('creationTimestamp');
  if (!r.isNull(ts)) {
    const s = isScalar(ts) ? ts.value : undefined;
    const ms = typeof s === 'string' ? Date.parse(s) : s instanceof Date ? s.getTime() : NaN;
    if (Number.isNaN(ms)) r.error(ts, o.at('creationTimestamp'), `${show(ts)} is not an RFC 3339 time (e.g. 2024-01-02T03:04:05Z)`);
    else createdMs = ms;
  }
  if (name === undefined || namespace === undefined) return undefined;
  return { name, namespace, createdMs, source: `${source}:${line}` };
}

/**
 * A parentRef or targetRef: kind Service (group "" or "core") or kind Gateway (group
 * gateway.networking.k8s.io), which must be this waypoint to take effect.
 */
export function parseRef(r: YamlReader, node: YNode, path: string, defNamespace: string, opts: { allowPort: boolean; allowSection: boolean }): ObjectRef | undefined {
  const fields = ['group', 'kind', 'name', 'namespace', ...(opts.allowPort ? ['port'] : []), ...(opts.allowSection ? ['sectionName'] : [])];
  const o = r.object(node, path, fields);
  if (!o) return undefined;
  const group = r.string(o.get('group'), o.at('group'), { def: 'gateway.networking.k8s.io' });
  const kind = r.string(o.get('kind'), o.at('kind'), { def: 'Gateway' });
  const name = r.string(o.get('name'), o.at('name'), { required: true, owner: node });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { def: defNamespace });
  const port = opts.allowPort && !r.isNull(o.get('port')) ? r.int(o.get('port'), o.at('port'), 1, 65535, 'a port') : null;
  if (opts.allowSection && !r.isNull(o.get('sectionName'))) {
    r.error(o.get('sectionName'), o.at('sectionName'), 'sectionName is not supported: attach to a Service (optionally with port) or to the waypoint Gateway');
  }
  if (group === undefined || kind === undefined || name === undefined || namespace === undefined || port === undefined) return undefined;
  if (kind === 'Service' && (group === '' || group === 'core')) return { kind: 'Service', name, namespace, port };
  if (kind === 'Gateway' && group === 'gateway.networking.k8s.io') return { kind: 'Gateway', name, namespace, port: null };
  r.error(o.node, path, `kind ${JSON.stringify(kind)} in group ${JSON.stringify(group)} is not supported; supported: kind Service (group "") or kind Gateway (group gateway.networking.k8s.io, the waypoint)`);
  return undefined;
}

/** A list of `{name, value}` pairs (header modifiers); names must be valid header names. */
export function parseNameValues(r: YamlReader, node: YNode, path: string): { name: string; value: string }[] {
  return r.list(node, path, '{name, value}', (n, p) => {
    const o = r.object(n, p, ['name', 'value']);
    if (!o) return undefined;
    const name = headerName(r, o, 'name');
    const value = r.string(o.get('value'), o.at('value'), { def: '' });
    return name === undefined || value === undefined ? undefined : { name, value };
  });
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A header field name (RFC 9110 token), lower-cased. */
export function headerName(r: YamlReader, o: ObjectReader, field: string): string | undefined {
  const s = r.string(o.get(field), o.at(field), { required: true, owner: o.node });
  if (s === undefined) return undefined;
  if (!TOKEN.test(s)) {
    r.error(o.get(field), o.at(field), `${JSON.stringify(s)} is not a valid header name`);
    return undefined;
  }
  return s.toLowerCase();
}

/** A regular expression (RE2 syntax is the Gateway API's; JavaScript's covers the common subset). */
export function parseRegex(r: YamlReader, node: YNode, path: string, value: string): RegExp | undefined {
  try {
    return new RegExp(`^(?:${value})$`);
  } catch (err) {
    r.error(node, path, `${JSON.stringify(value)} is not a valid regular expression: ${(err as Error).message}`);
    return undefined;
  }
}

/** Gateway API Duration: 1 to 4 groups of `<n>(h|m|s|ms)`; "0s" means no timeout (null). */
export function parseGatewayDuration(r: YamlReader, node: YNode, path: string): number | null | undefined {
  if (r.isNull(node)) return null;
  const s = r.string(node, path);
  if (s === undefined) return undefined;
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(s)) {
    r.error(node, path, `${JSON.stringify(s)} is not a Gateway API duration (e.g. 500ms, 10s, 1m30s)`);
    return undefined;
  }
  let ms = 0;
  for (const m of s.matchAll(/([0-9]+)(h|ms|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms === 0 ? null : ms;
}

export function isMapNode(n: YNode): n is Node {
  return isMap(n);
}
