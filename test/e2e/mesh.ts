/**
 * Brings the e2e mesh up on the network of topology.ts (see README.md, "model"), as
 * ztunnel runs in a cluster with istio-cni:
 *  - the dev CA in node1's namespace on 10.0.0.1:15012;
 *  - per NODE namespace: ONE `ztunnel-ts node` process with INPOD_ENABLED=true and one
 *    `ztunnel-ts agent` (the stand-in for istio-cni's node agent) serving ZDS on the node's
 *    socket; the agent enrols the node's pods from its pods file (their network namespaces),
 *    hands each namespace to the node proxy (which opens 15001/15006/15008 inside it) and
 *    installs the in-pod capture rules (mark-only, no uid exclusion);
 *  - mesh-unaware apps (HTTP + TCP echo) in b1, b2 and ext.
 * Every process is tracked by PID in the Topology and killed in destroy().
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Topology, type NsProcess, type RunResult } from '../helpers/netns';
import { parsePrometheusText, type ParsedMetrics } from '../helpers/prom-text';
import { buildNetwork, PODS, NODE_IP, EXT, type E2eNet, type PodDef } from './topology';

export const MAIN_JS = path.resolve(__dirname, '../../src/cli/main.js');
const FIXTURES = path.join(__dirname, 'fixtures');
export const TRUST_DOMAIN = 'cluster.local';
export const HTTP_PORT = 8080;
export const ECHO_PORT = 9000;

export const spiffe = (sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/default/sa/${sa}`;
export const podUid = (name: string): string => `Kubernetes//Pod/default/${name}`;
export type NodeName = 'node1' | 'node2';
/** Pods enrolled at start (a3 is enrolled by a test). */
export const INITIAL_PODS = ['a1', 'a2', 'b1', 'b2'] as const;

/**
 * Policies: b1 is STRICT (istiod's static DENY for "no peer identity"); b2 denies a2.
 * `extra`: more YAML lines for a pod's workload entry (indented as its fields), by pod name.
 */
export function localConfigYaml(extra: Readonly<Record<string, string>> = {}): string {
  const policyOf: Record<string, string[]> = { b1: ['istio-system/istio_converted_static_strict'], b2: ['default/deny-from-a2'] };
  const workloads = PODS.map(
    (p) => `  - uid: ${podUid(p.name)}
    name: ${p.name}
    namespace: default
    serviceAccount: ${p.name}
    trustDomain: ${TRUST_DOMAIN}
    workloadIps: [${p.ip}]
    protocol: HBONE
    node: ${p.node}
    canonicalName: ${p.name}
    canonicalRevision: v1
    workloadName: ${p.name}
    authorizationPolicies: [${(policyOf[p.name] ?? []).join(', ')}]${extra[p.name] ? `\n${extra[p.name]}` : ''}`,
  );
  return `workloads:
${workloads.join('\n')}
policies:
  - name: deny-from-a2
    namespace: default
    scope: WorkloadSelector
    action: Deny
    rules:
      - - - principals: [{Exact: ${TRUST_DOMAIN}/ns/default/sa/a2}]
  - name: istio_converted_static_strict
    namespace: istio-system
    scope: WorkloadSelector
    action: Deny
    rules:
      - - - notPrincipals: [Presence]
`;
}

/** One access-log record of a proxy (LOG_FORMAT=json). */
export type LogRecord = Record<string, unknown>;

export class E2eMesh {
  readonly topo = new Topology('e2e');
  net!: E2eNet;
  readonly dir: string;
  /** The node proxy of each node (one process per node). */
  readonly proxies = new Map<NodeName, NsProcess>();
  readonly agents = new Map<NodeName, NsProcess>();
  readonly apps = new Map<string, NsProcess>();
  /** Pods listed in each node agent's pods file. */
  readonly enrolled = new Map<NodeName, Set<string>>([['node1', new Set()], ['node2', new Set()]]);
  ca: NsProcess | null = null;
  /** Timings of the setup phases, for the report. */
  readonly timings: Record<string, number> = {};
  /** One e2e topology at a time on this machine (ava runs the e2e files in parallel processes). */
  private readonly lock = new TopologyLock();

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ztts-e2e-'));
    fs.chmodSync(this.dir, 0o755);
  }

  ns(role: string): string {
    const n = this.net.ns[role];
    if (!n) throw new Error(`no namespace for ${role}`);
    return n;
  }

  pod(name: string): PodDef {
    const p = PODS.find((x) => x.name === name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  async start(): Promise<void> {
    await this.lock.acquire();
    let t0 = Date.now();
    this.net = await buildNetwork(this.topo);
    this.timings['network_ms'] = Date.now() - t0;
    this.writeFiles();
    t0 = Date.now();
    await this.startCa();
    this.timings['ca_ms'] = Date.now() - t0;
    await this.startApps();
    t0 = Date.now();
    await Promise.all((['node1', 'node2'] as const).map((n) => this.startProxy(n)));
    this.timings['proxies_ready_ms'] = Date.now() - t0;
    t0 = Date.now();
    for (const n of ['node1', 'node2'] as const) this.startAgent(n);
    await Promise.all(INITIAL_PODS.map((p) => this.enrol(p)));
    for (const n of ['node1', 'node2'] as const) await this.waitReady(n, this.proxies.get(n)!);
    this.timings['pods_enrolled_ms'] = Date.now() - t0;
  }

  /** The served local config (a subclass adds what its tests need). */
  protected localConfig(): string {
    return localConfigYaml();
  }

  /** Extra env of the node agents (e.g. DNS_CAPTURE, so they install the DNS rules too). */
  protected agentExtraEnv(): Record<string, string> {
    return {};
  }

  private writeFiles(): void {
    fs.writeFileSync(path.join(this.dir, 'local.yaml'), this.localConfig(), { mode: 0o644 });
    fs.mkdirSync(path.join(this.dir, 'tokens'), { mode: 0o755 });
    const tokens = (['node1', 'node2'] as const).map((node) => ({ node, token: randomBytes(18).toString('base64url') }));
    fs.writeFileSync(path.join(this.dir, 'ca-tokens.yaml'), tokens.map((t) => `- { token: "${t.token}", namespace: istio-system, serviceAccount: ztunnel, node: "${t.node}" }`).join('\n') + '\n', { mode: 0o600 });
    for (const t of tokens) {
      fs.writeFileSync(path.join(this.dir, 'tokens', t.node), t.token, { mode: 0o600 });
      fs.mkdirSync(path.join(this.dir, t.node), { mode: 0o755 });
      this.writePods(t.node);
    }
  }

  private async startCa(): Promise<void> {
    const caDir = path.join(this.dir, 'ca');
    const opts = { dir: caDir, host: NODE_IP.node1, port: 15012, tokensPath: path.join(this.dir, 'ca-tokens.yaml'), localXdsPath: path.join(this.dir, 'local.yaml'), trustDomain: TRUST_DOMAIN, serverSans: [NODE_IP.node1] };
    this.ca = this.topo.spawn(this.ns('node1'), 'ca', process.execPath, [path.join(FIXTURES, 'ca-child.js'), JSON.stringify(opts)]);
    await this.ca.waitFor(/^CA READY /, 20_000);
    fs.chmodSync(caDir, 0o755);
  }

  private async startApps(): Promise<void> {
    for (const name of ['b1', 'b2', 'ext']) {
      const p = this.topo.spawn(this.ns(name), `app-${name}`, process.execPath, [path.join(FIXTURES, 'apps.js'), name, '0.0.0.0', String(HTTP_PORT), String(ECHO_PORT)]);
      this.apps.set(name, p);
      await p.waitFor(/^APPS READY/, 10_000);
    }
  }

  socketPath(node: NodeName): string {
    return path.join(this.dir, node, 'ztunnel.sock');
  }

  private podsFile(node: NodeName): string {
    return path.join(this.dir, node, 'pods.yaml');
  }

  private writePods(node: NodeName): void {
    const rows = [...this.enrolled.get(node)!].map((name) => `  - { uid: "${podUid(name)}", name: ${name}, namespace: default, serviceAccount: ${name}, netns: ${this.ns(name)} }`);
    const tmp = `${this.podsFile(node)}.tmp`;
    fs.writeFileSync(tmp, `pods:\n${rows.join('\n')}\n`);
    fs.renameSync(tmp, this.podsFile(node));
  }

  /** The node agent of a node: serves ZDS, enrols the pods file's pods, installs their rules. */
  startAgent(node: NodeName): NsProcess {
    const env = { PATH: process.env['PATH'], LOG_FORMAT: 'json', LOG_LEVEL: 'info', INPOD_UDS: this.socketPath(node), AGENT_PODS: this.podsFile(node), PACKET_MARK: '1337', ...this.agentExtraEnv() };
    const proc = this.topo.spawn(this.ns(node), `agent-${node}`, process.execPath, [MAIN_JS, 'agent'], { env });
    this.agents.set(node, proc);
    return proc;
  }

  /** Adds a pod to its node agent's file and waits until the agent enrolled it (rules installed, proxy acked). */
  async enrol(name: string): Promise<void> {
    const p = this.pod(name);
    const agent = this.agents.get(p.node)!;
    const count = (): number => agent.output().split(`"uid":"${podUid(name)}","netns":"${this.ns(name)}","proxies"`).length;
    const before = count();
    this.enrolled.get(p.node)!.add(name);
    this.writePods(p.node);
    await waitUntil(() => count() > before, `agent on ${p.node} to enrol ${name}; agent output:\n${agent.output().slice(-2000)}`, 20_000);
    await waitUntil(() => this.proxyHasPod(name), `node proxy on ${p.node} to run ${name}`, 20_000);
  }

  /** Removes a pod from its node agent's file without waiting (the agent may be down). */
  forget(name: string): void {
    const node = this.pod(name).node;
    this.enrolled.get(node)!.delete(name);
    this.writePods(node);
  }

  /** Whether the node proxy serving `name` runs its in-pod proxy (admin /config_dump, "inpod" section). */
  async proxyHasPod(name: string): Promise<boolean> {
    const r = await this.topo.exec(this.ns(this.pod(name).node), 'curl', ['-s', '-m', '2', 'http://127.0.0.1:15000/config_dump']);
    try {
      const dump = JSON.parse(r.stdout) as { inpod?: { pods?: string[] } };
      return dump.inpod?.pods?.includes(podUid(name)) ?? false;
    } catch {
      return false;
    }
  }

  /** Removes a pod from its node agent's file and waits until the agent un-enrolled it. */
  async unenrol(name: string): Promise<void> {
    const p = this.pod(name);
    const agent = this.agents.get(p.node)!;
    const count = (): number => agent.output().split(`"uid":"${podUid(name)}","netns":"${this.ns(name)}","msg":"pod un-enrolled"`).length;
    const before = count();
    this.enrolled.get(p.node)!.delete(name);
    this.writePods(p.node);
    await waitUntil(() => count() > before, `agent on ${p.node} to un-enrol ${name}`, 20_000);
  }

  nodeEnv(node: NodeName, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env['PATH'],
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      NODE_NAME: node,
      LOCAL_XDS_PATH: path.join(this.dir, 'local.yaml'),
      CA_ADDRESS: `https://${NODE_IP.node1}:15012`,
      CA_ROOT_CA: path.join(this.dir, 'ca', 'root-cert.pem'),
      AUTH_TOKEN: path.join(this.dir, 'tokens', node),
      TRUST_DOMAIN,
      // One process per node: host-less listener addresses (the defaults) mean "this port
      // inside every pod the node agent enrols".
      INPOD_ENABLED: 'true',
      INPOD_UDS: this.socketPath(node),
      INPOD_PORT_REUSE: 'true',
      ADMIN_ADDR: '127.0.0.1:15000',
      STATS_ADDR: '127.0.0.1:15020',
      READINESS_ADDR: '127.0.0.1:15021',
      PACKET_MARK: '1337',
      IPV6_ENABLED: 'false',
      CONNECT_TIMEOUT: '3s',
      CONNECTION_TERMINATION_DEADLINE: '1s',
      ...extra,
    };
  }

  /**
   * The node proxy of a node, in the node's namespace, as root (setns into pod namespaces
   * needs CAP_SYS_ADMIN, SO_MARK CAP_NET_ADMIN, as ztunnel's DaemonSet grants). It is ready
   * once its agent's snapshot is acknowledged, so at start (no agent yet) only its admin
   * port is awaited; `ready` waits for readiness.
   */
  async startProxy(node: NodeName, opts: { ready?: boolean; label?: string; env?: Record<string, string> } = {}): Promise<NsProcess> {
    const proc = this.topo.spawn(this.ns(node), opts.label ?? `proxy-${node}`, process.execPath, [MAIN_JS, 'node'], { env: this.nodeEnv(node, opts.env) });
    if (!opts.label) this.proxies.set(node, proc);
    const port = (opts.env?.['READINESS_ADDR'] ?? '127.0.0.1:15021').split(':')[1]!;
    if (opts.ready) await this.waitReady(node, proc, 30_000, port);
    else await proc.waitFor(/"msg":"connected to the node agent \(ZDS\)"|cannot connect to the node agent/, 30_000);
    return proc;
  }

  async waitReady(node: NodeName, proc: NsProcess, timeoutMs = 30_000, port = '15021'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (proc.exitStatus) throw new Error(`node proxy on ${node} exited (${proc.exitStatus.code ?? proc.exitStatus.signal}) before ready; output:\n${proc.output().slice(-3000)}`);
      const r = await this.topo.exec(this.ns(node), 'curl', ['-s', '-m', '1', '-w', ' %{http_code}', `http://127.0.0.1:${port}/healthz/ready`]);
      last = r.stdout.trim();
      if (last.endsWith(' 200')) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`node proxy on ${node} not ready within ${timeoutMs}ms (last readiness answer ${last || 'none'}); output:\n${proc.output().slice(-3000)}`);
  }

  /** curl from a pod (a mesh-unaware client), with its wall time. */
  async curl(from: string, url: string, maxTimeS = 5): Promise<RunResult & { ms: number }> {
    const t0 = Date.now();
    const r = await this.topo.exec(this.ns(from), 'curl', ['-sS', '-m', String(maxTimeS), url], { timeoutMs: (maxTimeS + 5) * 1000 });
    return { ...r, ms: Date.now() - t0 };
  }

  /** Sends a line through a plain TCP connection with socat and returns what came back. */
  async echo(from: string, host: string, port: number, payload: string, waitS = 3): Promise<RunResult & { ms: number }> {
    const t0 = Date.now();
    const r = await this.topo.exec(this.ns(from), 'socat', [`-t${waitS}`, `-T${waitS + 2}`, '-', `TCP:${host}:${port},connect-timeout=${waitS}`], { input: payload, timeoutMs: (waitS + 10) * 1000 });
    return { ...r, ms: Date.now() - t0 };
  }

  /** Metrics of the node proxy serving a pod (or of a node). */
  async metrics(podOrNode: string, port = 15020): Promise<ParsedMetrics> {
    const node = this.nodeOf(podOrNode);
    const r = await this.topo.exec(this.ns(node), 'curl', ['-sS', '-m', '3', `http://127.0.0.1:${port}/metrics`]);
    if (r.code !== 0) throw new Error(`scraping ${node}'s proxy metrics failed: ${r.stderr}`);
    return parsePrometheusText(r.stdout);
  }

  nodeOf(podOrNode: string): NodeName {
    return podOrNode === 'node1' || podOrNode === 'node2' ? podOrNode : this.pod(podOrNode).node;
  }

  /** JSON records the node proxy (of a pod or node) logged so far. */
  logs(podOrNode: string): LogRecord[] {
    const out: LogRecord[] = [];
    for (const line of (this.proxies.get(this.nodeOf(podOrNode))?.output() ?? '').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        /* a partial last line */
      }
    }
    return out;
  }

  /**
   * Access-log closing lines ("connection complete", policy closes, early failures) of the
   * node proxy that concern a pod: its outbound connections and the inbound ones to it.
   */
  accessLogs(pod: string): LogRecord[] {
    const ip = this.pod(pod).ip;
    const mine = (r: LogRecord): boolean =>
      r['direction'] === 'outbound' ? r['src.workload'] === pod || String(r['src.addr']).startsWith(`${ip}:`) : r['dst.workload'] === pod || String(r['dst.addr']).startsWith(`${ip}:`);
    return this.logs(pod).filter((r) => r['scope'] === 'access' && r['msg'] !== 'connection opened' && r['msg'] !== 'connection update' && mine(r));
  }

  async destroy(): Promise<string[]> {
    const problems = await this.topo.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.lock.release();
    return problems;
  }
}

export const EXT_IP = EXT.ip;

/**
 * A machine-wide mutex (a directory made atomically, holding the owner's PID) so the e2e files
 * (e2e, orig-src, dns: each a two-node mesh with four pods) never build their topologies at
 * the same time: two at once starve each other on a small machine until enrolment times out.
 * A lock whose owner died is taken over.
 */
class TopologyLock {
  private static readonly DIR = path.join(os.tmpdir(), 'ztts-e2e-topology.lock');
  private held = false;

  async acquire(timeoutMs = 600_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        fs.mkdirSync(TopologyLock.DIR);
        fs.writeFileSync(path.join(TopologyLock.DIR, 'pid'), String(process.pid));
        this.held = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number(fs.readFileSync(path.join(TopologyLock.DIR, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      if (owner > 0 && !pidAlive(owner)) fs.rmSync(TopologyLock.DIR, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`another e2e topology (pid ${owner}) held ${TopologyLock.DIR} for ${timeoutMs}ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    fs.rmSync(TopologyLock.DIR, { recursive: true, force: true });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
