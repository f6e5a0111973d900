import * as dgram from 'node:dgram';
import { isIP } from 'node:net';
import * as packet from 'dns-packet';
import { parseSocketAddr, type SocketAddr } from '../util/socket-addr';
import { socksHttpGet } from './socks-http';

/**
 * The mesh file's `dns` section: the node proxies run their DNS proxy (DNS_CAPTURE) on every
 * workload IP, forwarding to a local resolver the mesh starts on `upstream` with `records`;
 * `checks` are self-check queries sent to a workload's DNS proxy.
 */
export interface MeshDns {
  readonly upstream: SocketAddr;
  /** The DNS proxy port on every workload IP. */
  readonly port: number;
  readonly records: Readonly<Record<string, readonly string[]>>;
  readonly checks: readonly MeshDnsCheck[];
}

export interface MeshDnsCheck {
  readonly name: string;
  /** The client workload IP: its DNS proxy is asked (from that IP). */
  readonly from: string;
  readonly query: string;
  readonly type: 'A' | 'AAAA';
  /** The addresses the answer must hold (any order). */
  readonly expect: readonly string[];
  /** Then GET http://<name>:<port>/ at the resolved address through this node's SOCKS5 (what the printed curl does). */
  readonly connect: { readonly via: string; readonly port: number } | null;
}

export function parseMeshDns(v: unknown, problems: string[]): MeshDns | null {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) {
    problems.push('dns: must be a mapping');
    return null;
  }
  const upstream = parseSocketAddr(String(v['upstream'] ?? '127.0.5.53:15353'));
  if (!upstream || !upstream.ip.startsWith('127.')) problems.push(`dns.upstream: ${JSON.stringify(v['upstream'])} must be a loopback ip:port`);
  const port = v['port'] === undefined ? 15053 : Number(v['port']);
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`dns.port: ${JSON.stringify(v['port'])} is not a port`);
  const records: Record<string, string[]> = {};
  if (v['records'] !== undefined && !isObj(v['records'])) problems.push('dns.records: must map names to an address or a list of addresses');
  for (const [name, ips] of Object.entries(isObj(v['records']) ? v['records'] : {})) {
    const list = (Array.isArray(ips) ? ips : [ips]).map(String);
    for (const ip of list) if (isIP(ip) === 0) problems.push(`dns.records.${name}: ${JSON.stringify(ip)} is not an IP address`);
    records[name] = list;
  }
  const checks: MeshDnsCheck[] = [];
  const rawChecks = v['checks'] ?? [];
  if (!Array.isArray(rawChecks)) problems.push('dns.checks: must be a list');
  (Array.isArray(rawChecks) ? rawChecks : []).forEach((c: unknown, i: number) => {
    const path = `dns.checks[${i}]`;
    const o = isObj(c) ? c : {};
    const from = String(o['from'] ?? '');
    if (isIP(from) !== 4) problems.push(`${path}.from: ${JSON.stringify(o['from'])} is not an IPv4 address`);
    const query = String(o['query'] ?? '');
    if (query === '') problems.push(`${path}.query: a name is needed`);
    const type = o['type'] === undefined ? 'A' : String(o['type']);
    if (type !== 'A' && type !== 'AAAA') problems.push(`${path}.type: must be A or AAAA`);
    const expect = (Array.isArray(o['expect']) ? o['expect'] : [o['expect']]).filter((x) => x !== undefined).map(String);
    if (expect.length === 0 || expect.some((ip) => isIP(ip) === 0)) problems.push(`${path}.expect: ${JSON.stringify(o['expect'])} must be an address or a list of addresses`);
    let connect: MeshDnsCheck['connect'] = null;
    if (o['connect'] !== undefined) {
      const cn = isObj(o['connect']) ? o['connect'] : {};
      const port = Number(cn['port'] ?? 80);
      if (typeof cn['via'] !== 'string' || !Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${path}.connect: needs via: <node> and port`);
      connect = { via: String(cn['via'] ?? ''), port };
    }
    checks.push({ name: String(o['name'] ?? `${query} ${type}`), from, query, type: type === 'AAAA' ? 'AAAA' : 'A', expect, connect });
  });
  return { upstream: upstream ?? { ip: '127.0.5.53', port: 15353, family: 4 }, port, records, checks };
}

export interface DnsCheckResult {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

/**
 * Asks each check's workload DNS proxy over UDP (from the workload's IP) and compares the
 * addresses; a check with `connect` then reaches the first address through the mesh.
 */
export async function runDnsChecks(dns: MeshDns, nodes: readonly { name: string; ip: string; ports: { socks5: number } }[], timeoutMs = 3000): Promise<DnsCheckResult[]> {
  const out: DnsCheckResult[] = [];
  for (const c of dns.checks) {
    const t0 = Date.now();
    const r = await queryOnce(c.from, dns.port, c.query, c.type, timeoutMs).catch((err: Error) => err);
    const ms = Date.now() - t0;
    if (r instanceof Error) {
      out.push({ name: c.name, pass: false, detail: `${c.query} ${c.type} via ${c.from}:${dns.port}: ${r.message}` });
      continue;
    }
    const got = r.answers.filter((a) => a.type === c.type).map((a) => a.data);
    const cname = r.answers.find((a) => a.type === 'CNAME');
    const pass = r.rcode === 'NOERROR' && got.length === c.expect.length && c.expect.every((ip) => got.includes(ip));
    const shown = `${r.rcode}${r.aa ? ' aa' : ''} ${cname ? `CNAME ${cname.data} ` : ''}${got.join(', ') || '(no addresses)'}`;
    const detail = `${c.query} ${c.type} → ${shown} in ${ms}ms${pass ? '' : ` (expected ${c.expect.join(', ')})`}`;
    if (!pass || !c.connect || got[0] === undefined) {
      out.push({ name: c.name, pass, detail });
      continue;
    }
    const node = nodes.find((n) => n.name === c.connect?.via);
    const http = node ? await socksHttpGet({ ip: node.ip, port: node.ports.socks5 }, c.from, got[0], c.connect.port, timeoutMs) : null;
    const ok = http?.kind === 'response' && http.status === 200;
    const then = !http ? `node ${c.connect.via} not found` : http.kind === 'response' ? `HTTP ${http.status}: ${http.body.trim().slice(0, 60)}` : http.kind === 'error' ? `error: ${http.message}` : `SOCKS reply ${http.code}`;
    out.push({ name: c.name, pass: ok, detail: `${detail}; then GET http://${c.query}:${c.connect.port}/ via ${got[0]}: ${then}` });
  }
  return out;
}

interface Answer {
  rcode: string;
  aa: boolean;
  answers: { type: string; data: string }[];
}

function queryOnce(from: string, port: number, name: string, type: 'A' | 'AAAA', timeoutMs: number): Promise<Answer> {
  const s = dgram.createSocket('udp4');
  return new Promise<Answer>((resolve, reject) => {
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no answer within ${timeoutMs}ms`));
    }, timeoutMs);
    s.on('error', (err) => {
      clearTimeout(timer);
      s.close();
      reject(err);
    });
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      try {
        const p = packet.decode(m) as packet.DecodedPacket & { rcode?: string };
        resolve({ rcode: p.rcode ?? '', aa: p.flag_aa, answers: (p.answers ?? []).map((a) => ({ type: a.type, data: String((a as { data?: unknown }).data) })) });
      } catch (err) {
        reject(err as Error);
      }
    });
    s.bind({ address: from, port: 0 }, () => s.send(packet.encode({ id: 1 + Math.floor(Math.random() * 65534), type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type, name }] }), port, from));
  });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
