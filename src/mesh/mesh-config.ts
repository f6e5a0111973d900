import { isIP } from 'node:net';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseLocalConfig, formatLocalConfigError } from '../state/local-config';
import { parseSocketAddr, splitHostPort, type SocketAddr } from '../util/socket-addr';
import { parseL7Config } from '../waypoint/config/parse';
import { parseMeshDns, type MeshDns } from './mesh-dns';

/** One node proxy of the local mesh. */
export interface MeshNode {
  readonly name: string;
  /** Loopback IP where its SOCKS5, admin, stats and readiness servers listen. */
  readonly ip: string;
  readonly ports: { readonly socks5: number; readonly admin: number; readonly stats: number; readonly readiness: number };
}

export interface MeshApp {
  readonly name: string;
  readonly listen: SocketAddr;
}

/** A waypoint of the local mesh: a `ztunnel-ts waypoint` child with its own identity and L7 config. */
export interface MeshWaypoint {
  /** The Gateway name routes and policies attach to (WAYPOINT_NAME). */
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Its pod IP: HBONE on ip:15008; a workload with this IP must be in `workloads`. */
  readonly ip: string;
  readonly ports: { readonly admin: number; readonly stats: number; readonly readiness: number };
  /** HTTPRoute / GRPCRoute / AuthorizationPolicy objects as multi-document YAML (WAYPOINT_CONFIG_PATH). */
  readonly configYaml: string;
  /** Extra waypoint settings (e.g. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), as its environment. */
  readonly env: Readonly<Record<string, string>>;
}

export interface MeshCheck {
  readonly name: string;
  /** Source IP (a client workload IP) the request is sent from. */
  readonly from: string;
  /** The node whose SOCKS5 listener is used. */
  readonly via: string;
  /** ip:port or hostname:port. */
  readonly to: { readonly host: string; readonly port: number };
  readonly expect: 'allow' | 'deny';
  /** HTTP request details (default GET /, no extra headers). */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Expected HTTP status when the request is answered (e.g. 403 from a waypoint policy); null = 200. */
  readonly status: number | null;
  /** Send `count` requests and compare which app answered ("hello from <app>") with these percentages (±7.5 points). */
  readonly count: number;
  readonly split: Readonly<Record<string, number>> | null;
}

export interface MeshConfig {
  readonly trustDomain: string;
  readonly caListen: SocketAddr;
  readonly nodes: readonly MeshNode[];
  readonly apps: readonly MeshApp[];
  readonly checks: readonly MeshCheck[];
  readonly waypoints: readonly MeshWaypoint[];
  /** ztunnel local config (workloads/services/policies) as YAML: LOCAL_XDS_PATH of every node. */
  readonly localConfigYaml: string;
  /** The DNS proxy of every node and the local upstream resolver (null: no DNS proxy). */
  readonly dns: MeshDns | null;
  /** Workloads as written (for printing what runs where). */
  readonly workloads: readonly { name: string; namespace: string; serviceAccount: string; ips: string[]; node: string }[];
}

/** A mesh file problem, naming the field path and the value. */
export class MeshConfigError extends Error {
  constructor(source: string, problems: readonly string[]) {
    super(`${source}: invalid mesh config:\n  ${problems.join('\n  ')}`);
    this.name = 'MeshConfigError';
  }
}

const TOP = new Set(['trustDomain', 'ca', 'nodes', 'waypoints', 'apps', 'selfCheck', 'dns', 'workloads', 'services', 'policies']);

/**
 * Parses the mesh file. Every problem is collected and reported with its path, and the
 * embedded workloads/services/policies are validated with the same parser the node
 * proxies use, so a bad file fails here, before any process starts.
 */
export function parseMeshConfig(text: string, source: string): MeshConfig {
  const problems: string[] = [];
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new MeshConfigError(source, [`not YAML: ${(err as Error).message}`]);
  }
  if (!isObj(doc)) throw new MeshConfigError(source, ['top level must be a mapping']);
  for (const k of Object.keys(doc)) if (!TOP.has(k)) problems.push(`${k}: unknown key (expected one of ${[...TOP].join(', ')})`);
  const trustDomain = typeof doc['trustDomain'] === 'string' ? doc['trustDomain'] : 'cluster.local';
  const ca = isObj(doc['ca']) ? doc['ca'] : {};
  const caListen = parseSocketAddr(String(ca['listen'] ?? '127.0.0.1:15712'));
  if (!caListen) problems.push(`ca.listen: ${JSON.stringify(ca['listen'])} is not ip:port`);

  const nodes = list(doc['nodes'], 'nodes', problems).map((n, i) => parseNode(n, `nodes[${i}]`, problems));
  if (nodes.length === 0) problems.push('nodes: at least one node is needed');
  const names = new Set(nodes.map((n) => n.name));
  const apps = list(doc['apps'], 'apps', problems).map((a, i) => {
    const path = `apps[${i}]`;
    const listen = isObj(a) ? parseSocketAddr(String(a['listen'])) : null;
    if (!isObj(a) || typeof a['name'] !== 'string' || !listen) problems.push(`${path}: needs name and listen: ip:port`);
    return { name: String(isObj(a) ? a['name'] : ''), listen: listen ?? { ip: '127.0.0.1', port: 0, family: 4 as const } };
  });
  const checks = list(doc['selfCheck'], 'selfCheck', problems).map((c, i) => parseCheck(c, `selfCheck[${i}]`, names, problems));
  const dns = parseMeshDns(doc['dns'], problems);

  const local = { workloads: doc['workloads'] ?? [], services: doc['services'] ?? [], policies: doc['policies'] ?? [] };
  const localConfigYaml = stringifyYaml(local);
  const parsed = parseLocalConfig(localConfigYaml, `${source} (workloads/services/policies)`);
  if (!parsed.ok) for (const e of parsed.errors) problems.push(formatLocalConfigError(source, e));
  const workloads = parsed.ok
    ? parsed.value.workloads.map((w) => ({ name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, ips: [...w.workloadIps], node: w.node }))
    : [];
  for (const w of workloads) if (w.node && !names.has(w.node)) problems.push(`workload ${w.namespace}/${w.name}: node ${JSON.stringify(w.node)} is not in nodes`);
  const waypoints = list(doc['waypoints'], 'waypoints', problems).map((w, i) => parseMeshWaypoint(w, `waypoints[${i}]`, source, problems));
  for (const w of waypoints) if (parsed.ok && !workloads.some((x) => x.ips.includes(w.ip))) problems.push(`waypoint ${w.name}: no workload has its ip ${w.ip} (add the waypoint pod to workloads)`);
  if (problems.length) throw new MeshConfigError(source, problems);
  return { trustDomain, caListen: caListen as SocketAddr, nodes, waypoints, apps, checks, dns, localConfigYaml, workloads };
}

function parseNode(n: unknown, path: string, problems: string[]): MeshNode {
  if (!isObj(n)) {
    problems.push(`${path}: must be a mapping`);
    return { name: '', ip: '', ports: { socks5: 0, admin: 0, stats: 0, readiness: 0 } };
  }
  const name = String(n['name'] ?? '');
  if (!/^[a-z0-9-]+$/.test(name)) problems.push(`${path}.name: ${JSON.stringify(n['name'])} must be lower-case letters, digits and '-'`);
  const ip = String(n['ip'] ?? '');
  if (isIP(ip) !== 4 || !ip.startsWith('127.')) problems.push(`${path}.ip: ${JSON.stringify(n['ip'])} must be an IPv4 loopback address (127.x.y.z)`);
  const ports = isObj(n['ports']) ? n['ports'] : {};
  const port = (k: string, def: number): number => {
    const v = ports[k] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) problems.push(`${path}.ports.${k}: ${JSON.stringify(v)} is not a port`);
    return Number(v);
  };
  return { name, ip, ports: { socks5: port('socks5', 15080), admin: port('admin', 15000), stats: port('stats', 15020), readiness: port('readiness', 15021) } };
}

function parseCheck(c: unknown, path: string, nodes: Set<string>, problems: string[]): MeshCheck {
  const o = isObj(c) ? c : {};
  const to = String(o['to'] ?? '');
  const hp = splitHostPort(to);
  const host = hp?.host ?? '';
  const port = hp?.port ?? 0;
  if (!host || port < 1 || port > 65535) problems.push(`${path}.to: ${JSON.stringify(o['to'])} must be host:port`);
  const via = String(o['via'] ?? '');
  if (!nodes.has(via)) problems.push(`${path}.via: ${JSON.stringify(o['via'])} is not a node`);
  const from = String(o['from'] ?? '');
  if (isIP(from) !== 4) problems.push(`${path}.from: ${JSON.stringify(o['from'])} is not an IPv4 address`);
  const expect = o['expect'];
  if (expect !== 'allow' && expect !== 'deny') problems.push(`${path}.expect: must be allow or deny`);
  const headers: Record<string, string> = {};
  if (isObj(o['headers'])) for (const [k, v] of Object.entries(o['headers'])) headers[k] = String(v);
  const status = o['status'] === undefined ? null : Number(o['status']);
  if (status !== null && !(Number.isInteger(status) && status >= 100 && status <= 599)) problems.push(`${path}.status: ${JSON.stringify(o['status'])} is not an HTTP status`);
  const count = o['count'] === undefined ? 1 : Number(o['count']);
  if (!Number.isInteger(count) || count < 1 || count > 10000) problems.push(`${path}.count: ${JSON.stringify(o['count'])} must be 1-10000`);
  let split: Record<string, number> | null = null;
  if (o['split'] !== undefined) {
    if (!isObj(o['split'])) problems.push(`${path}.split: must map app names to percentages`);
    else split = Object.fromEntries(Object.entries(o['split']).map(([k, v]) => [k, Number(v)]));
  }
  const reqPath = String(o['path'] ?? '/');
  if (!reqPath.startsWith('/')) problems.push(`${path}.path: ${JSON.stringify(o['path'])} must start with /`);
  return { name: String(o['name'] ?? path), from, via, to: { host, port }, expect: expect === 'deny' ? 'deny' : 'allow', path: reqPath, headers, status, count, split };
}

function parseMeshWaypoint(w: unknown, path: string, source: string, problems: string[]): MeshWaypoint {
  const o = isObj(w) ? w : {};
  const str = (k: string, def: string): string => (typeof o[k] === 'string' ? (o[k] as string) : def);
  const ip = str('ip', '');
  if (isIP(ip) !== 4 || !ip.startsWith('127.')) problems.push(`${path}.ip: ${JSON.stringify(o['ip'])} must be an IPv4 loopback address (127.x.y.z)`);
  const ports = isObj(o['ports']) ? o['ports'] : {};
  const port = (k: string): number => {
    const v = ports[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) problems.push(`${path}.ports.${k}: ${JSON.stringify(v)} is not a port`);
    return Number(v);
  };
  const objects = list(o['config'], `${path}.config`, problems);
  const configYaml = objects.map((x) => stringifyYaml(x)).join('---\n');
  const l7 = parseL7Config([{ text: configYaml, source: `${source} (${path}.config)` }]);
  if (!l7.ok) for (const e of l7.errors) problems.push(`${path}.config: ${e.path ? `${e.path}: ` : ''}${e.message}`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(isObj(o['env']) ? o['env'] : {})) {
    if (/^[A-Z][A-Z0-9_]*$/.test(k) && typeof v === 'string') env[k] = v;
    else problems.push(`${path}.env.${k}: expected an upper-case setting name with a string value`);
  }
  return { name: str('name', 'waypoint'), namespace: str('namespace', 'default'), serviceAccount: str('serviceAccount', str('name', 'waypoint')), ip, ports: { admin: port('admin'), stats: port('stats'), readiness: port('readiness') }, configYaml, env };
}

function list(v: unknown, path: string, problems: string[]): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    problems.push(`${path}: must be a list`);
    return [];
  }
  return v;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
