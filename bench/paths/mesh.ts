import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { workersPathId, type BenchOptions, type PathDef, type PathContext, type PathId } from './types';
import { benchAddr } from './addr';
import { freePort, waitForTcp, waitForHttp200, httpGet, sleep, type HostPort } from '../lib/net-util';
import { ManagedProc } from '../lib/managed';

/** Address block of the mesh (ztunnel-ts) paths. */
const B = 3;
const TRUST_DOMAIN = 'cluster.local';
/** Time a node proxy gets after SIGTERM to drain (and to write its --cpu-prof profile). */
const PROF_GRACE_MS = 15_000;

type StaticNodeKey = 'a' | 'a2' | 'b' | 'a-base' | 'a2-base' | 'b-base';

interface NodeSpec {
  /** A static node's key, or `a-wN`/`b-wN` for the workers sweep's node pairs. */
  readonly key: string;
  readonly nodeName: string;
  /** Extra env (pool settings for the unpooled variant). */
  readonly env: Record<string, string>;
  /** Loopback host number of the node's own addresses (SOCKS5, admin, stats, readiness). */
  readonly host: number;
  /** The workload on this node (client or server) and its IP's host number. */
  readonly workload: { readonly name: string; readonly ip: number };
  /** Runs the `--baseline` build instead of this tree's. */
  readonly baseline: boolean;
  /** ZTUNNEL_WORKER_THREADS set for this node (the workers sweep); absent: the node's default. */
  readonly workers?: number;
}

// Pooling defeated: one stream per HBONE connection, released at once, so every
// application connection costs a fresh TCP + TLS 1.3 + HTTP/2 handshake.
const NO_POOL = { POOL_MAX_STREAMS_PER_CONNECTION: '1', POOL_UNUSED_RELEASE_TIMEOUT: '1ms' };

const NODES: Record<StaticNodeKey, NodeSpec> = {
  a: { key: 'a', nodeName: 'bench-node-a', env: {}, host: 1, workload: { name: 'client', ip: 10 }, baseline: false },
  a2: { key: 'a2', nodeName: 'bench-node-a2', env: NO_POOL, host: 2, workload: { name: 'client2', ip: 11 }, baseline: false },
  b: { key: 'b', nodeName: 'bench-node-b', env: {}, host: 3, workload: { name: 'server', ip: 20 }, baseline: false },
  // The same three nodes from the --baseline build, with their own addresses and workloads.
  'a-base': { key: 'a-base', nodeName: 'bench-node-a-base', env: {}, host: 4, workload: { name: 'client-base', ip: 12 }, baseline: true },
  'a2-base': { key: 'a2-base', nodeName: 'bench-node-a2-base', env: NO_POOL, host: 5, workload: { name: 'client2-base', ip: 13 }, baseline: true },
  'b-base': { key: 'b-base', nodeName: 'bench-node-b-base', env: {}, host: 6, workload: { name: 'server-base', ip: 21 }, baseline: true },
};

/** Largest worker count of a sweep: the node pairs' host numbers and workload IPs below are laid out for it. */
export const MAX_WORKERS = 16;

/**
 * The node pair of one worker count: both nodes run with ZTUNNEL_WORKER_THREADS=N (the
 * node's data-path threads), on their own addresses and workloads so every count's pair
 * runs next to the others and the trials interleave as for any other path.
 */
function workersNodes(n: number): { readonly a: NodeSpec; readonly b: NodeSpec } {
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new Error(`worker count ${n} is outside 1..${MAX_WORKERS}`);
  const env = { ZTUNNEL_WORKER_THREADS: String(n) };
  return {
    a: { key: `a-w${n}`, nodeName: `bench-node-a-w${n}`, env, host: 40 + n, workload: { name: `client-w${n}`, ip: 80 + n }, baseline: false, workers: n },
    b: { key: `b-w${n}`, nodeName: `bench-node-b-w${n}`, env, host: 60 + n, workload: { name: `server-w${n}`, ip: 100 + n }, baseline: false, workers: n },
  };
}

/** Every node the run may start: the static ones and one pair per swept worker count. */
function allNodes(opts: BenchOptions): NodeSpec[] {
  const sweep = (opts.workers ?? []).map(workersNodes);
  return [...Object.values(NODES), ...sweep.flatMap((p) => [p.a, p.b])];
}

/** A node's workload IP; the non-mesh host of the passthrough path. */
const workloadIp = (n: NodeSpec): string => benchAddr(B, n.workload.ip);
const outsideIp = (): string => benchAddr(B, 30);
const nodeHost = (n: NodeSpec): string => benchAddr(B, n.host);

interface CaInfo {
  readonly address: string;
  readonly rootCert: string;
  readonly pid: number;
}

interface NodeInfo {
  readonly proc: ManagedProc;
  readonly socks5: HostPort;
  readonly statsUrl: string;
  readonly adminUrl: string;
}

interface MeshFiles {
  readonly xdsPath: string;
  readonly tokens: Record<string, string>;
}

function mainJs(repoRoot: string): string {
  return path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
}

/** Memoises one piece of shared mesh infrastructure per run (CA, each node). */
function shared<T>(ctx: PathContext, key: string, make: () => Promise<T>): Promise<T> {
  let p = ctx.shared.get(key) as Promise<T> | undefined;
  if (!p) {
    p = make();
    ctx.shared.set(key, p);
  }
  return p;
}

function workload(name: string, ip: string, node: string): Record<string, unknown> {
  return {
    uid: `Kubernetes//Pod/bench/${name}`,
    name,
    namespace: 'bench',
    serviceAccount: name,
    trustDomain: TRUST_DOMAIN,
    workloadIps: [ip],
    protocol: 'HBONE',
    node,
    network: '',
    workloadName: name,
    workloadType: 'deployment',
    canonicalName: name,
    canonicalRevision: 'v1',
  };
}

/** The local-xDS file (ztunnel's local format; JSON is YAML) and the CA tokens. */
function meshFiles(ctx: PathContext): Promise<MeshFiles> {
  return shared(ctx, 'mesh-files', async () => {
    const xdsPath = path.join(ctx.dir, 'mesh-xds.yaml');
    const nodes = allNodes(ctx.opts);
    const config = { workloads: nodes.map((n) => workload(n.workload.name, workloadIp(n), n.nodeName)), policies: [], services: [] };
    writeFileSync(xdsPath, JSON.stringify(config, null, 2));
    const tokens = Object.fromEntries(nodes.map((n) => [n.key, `bench-token-${n.key}-${process.pid}`]));
    return { xdsPath, tokens };
  });
}

function startCa(ctx: PathContext): Promise<CaInfo> {
  return shared(ctx, 'mesh-ca', async () => {
    const files = await meshFiles(ctx);
    const caDir = path.join(ctx.dir, 'mesh-ca');
    mkdirSync(caDir, { recursive: true });
    const port = await freePort('127.0.0.1');
    const tokens = allNodes(ctx.opts).map((n) => ({ token: files.tokens[n.key], namespace: 'istio-system', serviceAccount: 'ztunnel', node: n.nodeName }));
    // CA_TOKENS names a file (YAML or JSON list), read at start.
    const tokensPath = path.join(ctx.dir, 'mesh-ca-tokens.json');
    writeFileSync(tokensPath, JSON.stringify(tokens), { mode: 0o600 });
    const env = {
      ...process.env,
      CA_LISTEN_ADDR: `127.0.0.1:${port}`,
      CA_DIR: caDir,
      CA_TOKENS: tokensPath,
      CA_TRUSTED_NODE_ACCOUNTS: 'istio-system/ztunnel',
      LOCAL_XDS_PATH: files.xdsPath,
      TRUST_DOMAIN,
      LOG_LEVEL: 'warn',
    };
    const child = ctx.procs.spawn('mesh-ca', process.execPath, [mainJs(ctx.opts.repoRoot), 'ca'], { env, logPath: path.join(ctx.dir, 'mesh-ca.log') });
    const pid = child.pid!;
    const rootCert = path.join(caDir, 'root-cert.pem');
    try {
      await waitForTcp({ host: '127.0.0.1', port }, 20_000, () => ctx.procs.alive(pid));
      for (let i = 0; i < 50 && !existsSync(rootCert); i++) await sleep(100);
      if (!existsSync(rootCert)) throw new Error(`${rootCert} was not created`);
    } catch (err) {
      const tail = ctx.procs.logTail(pid);
      await ctx.procs.stop(pid);
      throw new Error(`ztunnel-ts ca did not start: ${(err as Error).message}\n${tail}`);
    }
    return { address: `https://127.0.0.1:${port}`, rootCert, pid };
  });
}

function startNode(ctx: PathContext, spec: NodeSpec): Promise<NodeInfo> {
  return shared(ctx, `mesh-node-${spec.key}`, async () => {
    const [files, ca] = await Promise.all([meshFiles(ctx), startCa(ctx)]);
    const host = nodeHost(spec);
    const root = spec.baseline ? ctx.opts.baselineRoot : ctx.opts.repoRoot;
    if (!root) throw new Error(`${spec.nodeName} needs --baseline DIR`);
    const [admin, stats, ready, socks] = await Promise.all([freePort(host), freePort(host), freePort(host), freePort(host)]);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_NAME: spec.nodeName,
      LOCAL_XDS_PATH: files.xdsPath,
      CA_ADDRESS: ca.address,
      CA_ROOT_CA: ca.rootCert,
      AUTH_TOKEN: files.tokens[spec.key],
      TRUST_DOMAIN,
      ADMIN_ADDR: `${host}:${admin}`,
      STATS_ADDR: `${host}:${stats}`,
      READINESS_ADDR: `${host}:${ready}`,
      SOCKS5_ADDR: `${host}:${socks}`,
      IPV6_ENABLED: 'false',
      LOG_LEVEL: ctx.opts.meshLogLevel,
      LOG_FORMAT: 'json',
      ...spec.env,
    };
    const execArgs = ctx.opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${ctx.opts.profDir}`] : [];
    const proc = new ManagedProc(ctx.procs, {
      name: `ztunnel-ts node ${spec.nodeName}`,
      cmd: process.execPath,
      args: [...execArgs, mainJs(root), 'node'],
      env,
      logPath: path.join(ctx.dir, `mesh-node-${spec.key}.log`),
      ready: (alive) => waitForHttp200(`http://${host}:${ready}/healthz/ready`, 30_000, alive),
    });
    await proc.start();
    return { proc, socks5: { host, port: socks }, statsUrl: `http://${host}:${stats}/metrics`, adminUrl: `http://${host}:${admin}` };
  });
}

function meshAvailable(baseline: boolean): PathDef['available'] {
  return async (ctx) => {
    const root = baseline ? ctx.baselineRoot : ctx.repoRoot;
    if (!root) return { ok: false, reason: 'no --baseline DIR given' };
    const js = mainJs(root);
    if (!existsSync(js)) return { ok: false, reason: `${js} missing (build that tree first)` };
    return { ok: true, version: `ztunnel-ts${baseline ? ` baseline ${root}` : ''} (node ${process.version})` };
  };
}

/**
 * How many data-path threads a node runs, as its /config_dump reports it (no `workers`
 * section: the main thread alone, as in builds before ZTUNNEL_WORKER_THREADS). The default
 * depends on the machine's CPUs and a sweep's setting could be ignored: the report says
 * what actually ran.
 */
async function dataPathThreads(n: NodeInfo): Promise<string> {
  try {
    const dump = JSON.parse((await httpGet(`${n.adminUrl}/config_dump`, 5000)).body) as { workers?: { threads?: number } };
    return String(dump.workers?.threads ?? 1);
  } catch (err) {
    return `? (${err instanceof Error ? err.message : String(err)})`;
  }
}

async function threadsNote(spec: NodeSpec, a: NodeInfo, b: NodeInfo | null): Promise<string> {
  const counts = `A ${await dataPathThreads(a)}${b ? `, B ${await dataPathThreads(b)}` : ''}`;
  return ` [data-path threads per node: ${counts}; ${spec.workers ? `ZTUNNEL_WORKER_THREADS=${spec.workers} in both nodes` : 'the nodes\' default'}]`;
}

function meshPath(id: PathId, clientNode: NodeSpec, serverNode: NodeSpec, outside: boolean): PathDef {
  return {
    id,
    available: meshAvailable(clientNode.baseline),
    async start(ctx) {
      const serverIp = workloadIp(serverNode);
      const target = await ctx.server.listen(outside ? outsideIp() : serverIp);
      const a = await startNode(ctx, clientNode);
      const b = outside ? null : await startNode(ctx, serverNode);
      const src = workloadIp(clientNode);
      const hops = outside
        ? `client ${src} → SOCKS5 ${a.socks5.host}:${a.socks5.port} (node A) → plain TCP passthrough → non-mesh server ${target.host}:${target.port}`
        : `client ${src} → SOCKS5 ${a.socks5.host}:${a.socks5.port} (${clientNode.nodeName}) → HBONE mTLS ${serverIp}:15008 (${serverNode.nodeName}) → server ${target.port}${clientNode.env === NO_POOL ? ' [pool defeated: 1 stream per HBONE connection]' : ''}`;
      const threads = await threadsNote(clientNode, a, b);
      return {
        id,
        entry: { first: a.socks5, socks5Target: target, localAddress: src },
        pids: () => (b ? [a.proc.pid, b.proc.pid] : [a.proc.pid]),
        restart: async () => {
          await Promise.all([a.proc.restart(PROF_GRACE_MS), b?.proc.restart(PROF_GRACE_MS)]);
        },
        metricsUrls: b ? [a.statsUrl, b.statsUrl] : [a.statsUrl],
        describe: `${hops}${threads}`,
        // The nodes are shared between mesh paths; ProcessSet.stopAll stops them at the end.
        stop: async () => undefined,
      };
    },
  };
}

export const mesh = meshPath('mesh', NODES.a, NODES.b, false);
export const meshNoPool = meshPath('mesh-nopool', NODES.a2, NODES.b, false);
export const passthrough = meshPath('passthrough', NODES.a, NODES.b, true);
export const meshBase = meshPath('mesh-base', NODES['a-base'], NODES['b-base'], false);
export const meshNoPoolBase = meshPath('mesh-nopool-base', NODES['a2-base'], NODES['b-base'], false);

/** The `mesh` path with ZTUNNEL_WORKER_THREADS=n in both nodes (`--workers`). */
export function meshWorkers(n: number): PathDef {
  const pair = workersNodes(n);
  return meshPath(workersPathId(n), pair.a, pair.b, false);
}
