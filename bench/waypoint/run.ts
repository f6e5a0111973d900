import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseMeshConfig } from '../../src/mesh/mesh-config';
import { MeshRunner } from '../../src/mesh/mesh-runner';
import { mintDevPki } from '../lib/certs';
import type { Entry } from '../lib/client';
import { ManagedProc } from '../lib/managed';
import { freePort, waitForTcp } from '../lib/net-util';
import { ProcessSet } from '../lib/proc';
import { fmtNum, summarize } from '../lib/stats';
import { benchAddr } from '../paths/addr';
import { requestIdentityRows, type RequestIdentityRows } from './request-identity';
import { trafficRows } from './traffic-rows';

/**
 * HTTP through the waypoint vs HAProxy in HTTP mode, both over two-hop mTLS on loopback:
 *  - waypoint: client → SOCKS5 on node A → HBONE → waypoint (HTTP/1.1 parse, route, L7
 *    authz, metrics) → HBONE → node B → app (three proxy processes, two mTLS legs);
 *  - haproxy: client → haproxy A (mode http) → TLS 1.3 + client cert → haproxy B (mode
 *    http, verify required) → app (two proxy processes, one mTLS leg).
 *  - mesh-l4: the same client to the pod IP (node A → HBONE → node B), no waypoint: the
 *    waypoint's own cost is the difference.
 * Same app (a tiny HTTP server), same keep-alive load; trials interleaved; medians.
 * usage: node dist/bench/waypoint/run.js [--seconds 5] [--conns 16] [--trials 3] [--log-warn] [--keep-temp]
 */
const BLOCK = 6;
const ip = (h: number): string => benchAddr(BLOCK, h);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly errors: number;
  readonly errorKinds: Readonly<Record<string, number>>;
}

function load(entry: Entry, conns: number, seconds: number, host = 'reviews.bench.svc.cluster.local', headers: Readonly<Record<string, string>> = {}): Promise<LoadResult> {
  const args = JSON.stringify({ entry, conns, seconds, warmupSeconds: 1, host, path: '/bench', headers });
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [path.join(__dirname, 'http-load.js'), args], { timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as LoadResult))),
  );
}

/** The bench's L7 config for a Service: a route to the app and a DENY policy that never matches the load. */
function l7For(service: string): Record<string, unknown>[] {
  return [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: service, namespace: 'bench' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: service }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/bench' } }], backendRefs: [{ name: 'reviews', port: 80 }] }] },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: `deny-admin-${service}`, namespace: 'bench' },
      spec: { targetRefs: [{ group: '', kind: 'Service', name: service }], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    },
  ];
}

interface FeatureEntry {
  readonly row: string;
  readonly entry: Entry;
  readonly host: string;
  readonly headers: Readonly<Record<string, string>>;
}

async function startMesh(dir: string, identity: RequestIdentityRows): Promise<{ runner: MeshRunner; entry: Entry; direct: Entry; features: FeatureEntry[] }> {
  const nodeA = ip(1);
  const nodeB = ip(2);
  const ports = async (host: string): Promise<Record<string, number>> => ({ socks5: await freePort(host), admin: await freePort(host), stats: await freePort(host), readiness: await freePort(host) });
  const wl = (name: string, addr: string, node: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    uid: `bench//Pod/bench/${name}`,
    name,
    namespace: 'bench',
    serviceAccount: name,
    trustDomain: 'cluster.local',
    workloadIps: [addr],
    protocol: 'HBONE',
    node,
    network: '',
    canonicalName: name,
    canonicalRevision: 'v1',
    workloadName: name,
    workloadType: 'deployment',
    clusterId: 'bench',
    ...extra,
  });
  const wpPorts = await ports(ip(30));
  const featureWaypoints: Record<string, unknown>[] = [];
  for (const f of identity.waypoints) {
    const p = await ports(ip(f.ipHost));
    featureWaypoints.push({ name: f.name, namespace: 'bench', serviceAccount: f.name, ip: ip(f.ipHost), ports: { admin: p['admin'], stats: p['stats'], readiness: p['readiness'] }, config: f.config, env: f.env });
  }
  const doc = {
    trustDomain: 'cluster.local',
    ca: { listen: `${ip(5)}:${await freePort(ip(5))}` },
    nodes: [
      { name: 'node-a', ip: nodeA, ports: await ports(nodeA) },
      { name: 'node-b', ip: nodeB, ports: await ports(nodeB) },
    ],
    waypoints: [
      {
        name: 'waypoint',
        namespace: 'bench',
        serviceAccount: 'waypoint',
        ip: ip(30),
        ports: { admin: wpPorts['admin'], stats: wpPorts['stats'], readiness: wpPorts['readiness'] },
        config: l7For('reviews'),
      },
      ...featureWaypoints,
    ],
    apps: [{ name: 'reviews', listen: `${ip(20)}:8080` }],
    workloads: [wl('client', ip(10), 'node-a'), wl('waypoint', ip(30), ''), ...identity.waypoints.map((f) => wl(f.name, ip(f.ipHost), '')), wl('reviews', ip(20), 'node-b', { services: { 'bench/reviews.bench.svc.cluster.local': { 80: 8080 } } })],
    services: [
      { name: 'reviews', namespace: 'bench', hostname: 'reviews.bench.svc.cluster.local', vips: [`/${ip(100)}`], ports: { 80: 8080 }, waypoint: { destination: `/${ip(30)}`, hboneMtlsPort: 15008 } },
      ...identity.waypoints.map((f) => ({ name: f.service, namespace: 'bench', hostname: `${f.service}.bench.svc.cluster.local`, vips: [`/${ip(f.vipHost)}`], ports: { 80: 8080 }, waypoint: { destination: `/${ip(f.ipHost)}`, hboneMtlsPort: 15008 } })),
    ],
  };
  const cfg = parseMeshConfig(stringify(doc), 'waypoint bench');
  const runner = new MeshRunner({ config: cfg, mainJs: path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js'), stateDir: path.join(dir, 'mesh'), logLevel: process.argv.includes('--log-warn') ? 'warn' : 'error', path: process.env['PATH'] ?? '/usr/bin:/bin', out: (l) => process.stderr.write(`  ${l}\n`) });
  await runner.start();
  const a = cfg.nodes[0]!;
  const socks = { host: a.ip, port: a.ports.socks5 };
  // The same client to the pod IP: node A → node B only (no waypoint), to show what the L7 hop adds.
  const features = identity.waypoints.map((f) => ({ row: f.row, entry: { first: socks, socks5Target: { host: ip(f.vipHost), port: 80 }, localAddress: ip(10) }, host: `${f.service}.bench.svc.cluster.local`, headers: f.headers }));
  return { runner, entry: { first: socks, socks5Target: { host: ip(100), port: 80 }, localAddress: ip(10) }, direct: { first: socks, socks5Target: { host: ip(20), port: 8080 }, localAddress: ip(10) }, features };
}

async function startHaproxy(dir: string, procs: ProcessSet): Promise<Entry> {
  const pki = mintDevPki(dir, ['hop-a', 'hop-b']);
  const hostA = ip(41);
  const hostB = ip(42);
  const portA = await freePort(hostA);
  const portB = await freePort(hostB);
  const global = (name: string): string =>
    `global\n  maxconn 9000\n  nbthread 1\n  tune.ssl.cachesize 0\n  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets\n  ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets\n  node ${name}\n` +
    `defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  timeout connect 5s\n  timeout client 300s\n  timeout server 300s\n  timeout http-keep-alive 300s\n`;
  const a = pki.leaves['hop-a']!;
  const b = pki.leaves['hop-b']!;
  const cfgA = path.join(dir, 'haproxy-a.cfg');
  const cfgB = path.join(dir, 'haproxy-b.cfg');
  writeFileSync(cfgA, `${global('hop-a')}frontend fe\n  bind ${hostA}:${portA}\n  default_backend be\nbackend be\n  server b ${hostB}:${portB} ssl crt ${a.combined} ca-file ${pki.rootCert} verify required no-ssl-reuse source ${hostA}\n`);
  writeFileSync(cfgB, `${global('hop-b')}frontend fe\n  bind ${hostB}:${portB} ssl crt ${b.combined} ca-file ${pki.rootCert} verify required\n  default_backend be\nbackend be\n  server s ${ip(20)}:8080 source ${hostB}\n`);
  for (const [name, cfg, host, port] of [['haproxy-b', cfgB, hostB, portB], ['haproxy-a', cfgA, hostA, portA]] as const) {
    await new ManagedProc(procs, { name, cmd: 'haproxy', args: ['-f', cfg, '-db'], logPath: path.join(dir, `${name}.log`), ready: (alive) => waitForTcp({ host, port }, 5000, alive) }).start();
  }
  return { first: { host: hostA, port: portA }, localAddress: ip(9) };
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 5);
  const conns = arg('conns', 16);
  const trials = arg('trials', 3);
  const dir = mkdtempSync(path.join(tmpdir(), 'zt-wp-bench-'));
  mkdirSync(path.join(dir, 'mesh'));
  const procs = new ProcessSet();
  let runner: MeshRunner | null = null;
  let identity: RequestIdentityRows | null = null;
  try {
    process.stderr.write('starting the mesh (CA, node A, node B, waypoint, app)…\n');
    identity = await requestIdentityRows(ip(5), l7For);
    // Traffic-management rows ride the same per-feature waypoint mechanism as the identity rows.
    const mesh = await startMesh(dir, { ...identity, waypoints: [...identity.waypoints, ...trafficRows(l7For)] });
    runner = mesh.runner;
    let haproxy: Entry | null = null;
    try {
      execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
      haproxy = await startHaproxy(dir, procs);
    } catch (err) {
      process.stderr.write(`haproxy path absent: ${(err as Error).message.split('\n')[0]}\n`);
    }
    const paths: [string, Entry][] = [['waypoint', mesh.entry], ['mesh-l4', mesh.direct], ...(haproxy ? [['haproxy-http', haproxy] as [string, Entry]] : []), ...mesh.features.map((f) => [f.row, f.entry] as [string, Entry])];
    const feature = new Map(mesh.features.map((f) => [f.row, f]));
    const results: Record<string, LoadResult[]> = {};
    for (let t = 0; t < trials; t++) {
      // The order rotates each trial, so no path always runs right after another's aftermath (e.g. span exports).
      for (const [name, entry] of [...paths.slice(t % paths.length), ...paths.slice(0, t % paths.length)]) {
        process.stderr.write(`trial ${t + 1}/${trials} ${name}: ${conns} keep-alive connections, ${seconds}s…\n`);
        const f = feature.get(name);
        (results[name] ??= []).push(await load(entry, conns, seconds, f?.host, f?.headers));
      }
    }
    const rows = paths.map(([name]) => {
      const r = results[name]!;
      const med = (k: 'rps' | 'p50' | 'p90' | 'p99'): number => summarize(r.map((x) => x[k]))!.median;
      return { name, rps: med('rps'), p50: med('p50'), p90: med('p90'), p99: med('p99'), errors: r.reduce((s, x) => s + x.errors, 0) };
    });
    for (const [name] of paths) {
      const kinds: Record<string, number> = {};
      for (const x of results[name]!) for (const [k, n] of Object.entries(x.errorKinds)) kinds[k] = (kinds[k] ?? 0) + n;
      if (Object.keys(kinds).length > 0) process.stderr.write(`${name} errors: ${JSON.stringify(kinds)}\n`);
    }
    const base = rows.find((r) => r.name === 'haproxy-http');
    const plain = rows.find((r) => r.name === 'waypoint');
    process.stdout.write(`\nHTTP/1.1 GET, ${conns} keep-alive connections, ${seconds}s × ${trials} trials (medians)\n`);
    process.stdout.write(`${'path'.padEnd(14)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p90 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(8)}${'req/s vs haproxy'.padStart(19)}${'vs waypoint (paired)'.padStart(22)}\n`);
    for (const r of rows) {
      const ratio = base ? `${(r.rps / base.rps).toFixed(2)}×` : 'n/a';
      // Paired: each trial's ratio to the plain waypoint's run in the same trial, then the median, so load drift between trials cancels.
      const paired = plain ? summarize(results[r.name]!.map((x, i) => x.rps / (results['waypoint']![i]?.rps ?? NaN)))!.median : NaN;
      const vsPlain = plain ? `${paired.toFixed(2)}×` : 'n/a';
      process.stdout.write(`${r.name.padEnd(14)}${fmtNum(r.rps).padStart(10)}${fmtNum(r.p50).padStart(10)}${fmtNum(r.p90).padStart(10)}${fmtNum(r.p99).padStart(10)}${String(r.errors).padStart(8)}${ratio.padStart(19)}${vsPlain.padStart(22)}\n`);
    }
    const out = path.resolve(__dirname, '..', '..', '..', 'bench', 'results', `waypoint-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    if (identity) process.stdout.write(`wp-tracing: ${identity.spansReceived()} spans received by the OTLP sink\n`);
    writeFileSync(out, JSON.stringify({ seconds, conns, trials, results, rows, spansExported: identity?.spansReceived() ?? null, node: process.version }, null, 2));
    process.stdout.write(`\nresults: ${out}\n`);
  } finally {
    await procs.stopAll();
    await runner?.stop();
    identity?.close();
    if (process.argv.includes('--keep-temp')) process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`waypoint bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
