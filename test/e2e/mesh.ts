/**
 * Brings the e2e mesh up on the network of topology.ts (see README.md, "model"):
 *  - the dev CA in node1's namespace on 10.0.0.1:15012;
 *  - in EVERY pod namespace: the in-pod capture rules (`ztunnel-ts redirect install
 *    --redirect-netns <pod>`) and one `ztunnel-ts node` process serving that pod, started
 *    with `ip netns exec <pod>` so its 15001/15006/15008 listeners live in the pod's netns
 *    (what ztunnel achieves with setns). It runs as uid 1337 with CAP_NET_ADMIN (SO_MARK);
 *  - mesh-unaware apps (HTTP + TCP echo) in b1, b2 and ext.
 * Every process is tracked by PID in the Topology and killed in destroy().
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Topology, run, type NsProcess, type RunResult } from '../helpers/netns';
import { parsePrometheusText, type ParsedMetrics } from '../helpers/prom-text';
import { buildNetwork, PODS, NODE_IP, EXT, type E2eNet, type PodDef } from './topology';

export const MAIN_JS = path.resolve(__dirname, '../../src/cli/main.js');
const FIXTURES = path.join(__dirname, 'fixtures');
/** The uid the per-pod proxies run as; capture rules exclude it (the CA/xDS sockets cannot be marked). */
export const PROXY_UID = 1337;
export const TRUST_DOMAIN = 'cluster.local';
export const HTTP_PORT = 8080;
export const ECHO_PORT = 9000;

export const spiffe = (sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/default/sa/${sa}`;

/** Policies: b1 is STRICT (istiod's static DENY for "no peer identity"); b2 denies a2. */
export function localConfigYaml(): string {
  const policyOf: Record<string, string[]> = { b1: ['istio-system/istio_converted_static_strict'], b2: ['default/deny-from-a2'] };
  const workloads = PODS.map(
    (p) => `  - uid: Kubernetes//Pod/default/${p.name}
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
    authorizationPolicies: [${(policyOf[p.name] ?? []).join(', ')}]`,
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
  readonly proxies = new Map<string, NsProcess>();
  readonly apps = new Map<string, NsProcess>();
  ca: NsProcess | null = null;
  /** Timings of the setup phases, for the report. */
  readonly timings: Record<string, number> = {};

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
    let t0 = Date.now();
    this.net = await buildNetwork(this.topo);
    this.timings['network_ms'] = Date.now() - t0;
    this.writeFiles();
    t0 = Date.now();
    await this.startCa();
    this.timings['ca_ms'] = Date.now() - t0;
    t0 = Date.now();
    for (const p of PODS) await this.installRedirect(p.name, true);
    this.timings['redirect_ms'] = Date.now() - t0;
    await this.startApps();
    t0 = Date.now();
    await Promise.all(PODS.map((p) => this.startProxy(p.name)));
    this.timings['proxies_ready_ms'] = Date.now() - t0;
  }

  private writeFiles(): void {
    fs.writeFileSync(path.join(this.dir, 'local.yaml'), localConfigYaml(), { mode: 0o644 });
    fs.mkdirSync(path.join(this.dir, 'tokens'), { mode: 0o755 });
    const tokens = (['node1', 'node2'] as const).map((node) => ({ node, token: randomBytes(18).toString('base64url') }));
    fs.writeFileSync(path.join(this.dir, 'ca-tokens.yaml'), tokens.map((t) => `- { token: "${t.token}", namespace: istio-system, serviceAccount: ztunnel, node: "${t.node}" }`).join('\n') + '\n', { mode: 0o600 });
    for (const t of tokens) {
      const f = path.join(this.dir, 'tokens', t.node);
      fs.writeFileSync(f, t.token, { mode: 0o600 });
      fs.chownSync(f, PROXY_UID, PROXY_UID);
    }
  }

  private async startCa(): Promise<void> {
    const caDir = path.join(this.dir, 'ca');
    const opts = { dir: caDir, host: NODE_IP.node1, port: 15012, tokensPath: path.join(this.dir, 'ca-tokens.yaml'), localXdsPath: path.join(this.dir, 'local.yaml'), trustDomain: TRUST_DOMAIN, serverSans: [NODE_IP.node1] };
    this.ca = this.topo.spawn(this.ns('node1'), 'ca', process.execPath, [path.join(FIXTURES, 'ca-child.js'), JSON.stringify(opts)]);
    await this.ca.waitFor(/^CA READY /, 20_000);
    fs.chmodSync(caDir, 0o755);
  }

  /** `ztunnel-ts redirect install` in the pod's netns (with or without the proxy-uid exclusion). */
  async installRedirect(pod: string, excludeProxyUid: boolean): Promise<void> {
    const args = [MAIN_JS, 'redirect', 'install', '--redirect-netns', this.ns(pod), ...(excludeProxyUid ? ['--redirect-proxy-uid', String(PROXY_UID)] : [])];
    const r = await run(process.execPath, args, { env: { PATH: process.env['PATH'] } });
    if (r.code !== 0) throw new Error(`redirect install in ${pod} failed: ${r.stderr}`);
  }

  private async startApps(): Promise<void> {
    for (const name of ['b1', 'b2', 'ext']) {
      const p = this.topo.spawn(this.ns(name), `app-${name}`, process.execPath, [path.join(FIXTURES, 'apps.js'), name, '0.0.0.0', String(HTTP_PORT), String(ECHO_PORT)]);
      this.apps.set(name, p);
      await p.waitFor(/^APPS READY/, 10_000);
    }
  }

  proxyEnv(pod: PodDef): NodeJS.ProcessEnv {
    return {
      PATH: process.env['PATH'],
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      NODE_NAME: pod.node,
      LOCAL_XDS_PATH: path.join(this.dir, 'local.yaml'),
      CA_ADDRESS: `https://${NODE_IP.node1}:15012`,
      CA_ROOT_CA: path.join(this.dir, 'ca', 'root-cert.pem'),
      AUTH_TOKEN: path.join(this.dir, 'tokens', pod.node),
      TRUST_DOMAIN,
      // 15001 must be a wildcard: OUTPUT REDIRECT delivers to 127.0.0.1. 15006 and 15008 are
      // bound to the pod IP (PREROUTING REDIRECT delivers to the incoming interface's address),
      // which in a one-IP pod is what ztunnel's [::] bind inside the pod netns amounts to.
      OUTBOUND_ADDR: '0.0.0.0:15001',
      INBOUND_PLAINTEXT_ADDR: `${pod.ip}:15006`,
      INBOUND_ADDR: `${pod.ip}:15008`,
      ADMIN_ADDR: '127.0.0.1:15000',
      STATS_ADDR: '127.0.0.1:15020',
      READINESS_ADDR: '127.0.0.1:15021',
      PACKET_MARK: '1337',
      IPV6_ENABLED: 'false',
      CONNECT_TIMEOUT: '3s',
      CONNECTION_TERMINATION_DEADLINE: '1s',
    };
  }

  /**
   * One node proxy for one pod, inside the pod's netns, as uid 1337 keeping CAP_NET_ADMIN
   * (ambient) so SO_MARK works: `ip netns exec` and `setpriv` both exec in place, so the PID
   * we hold is the node process itself.
   */
  async startProxy(pod: string): Promise<NsProcess> {
    const p = this.pod(pod);
    const setpriv = ['--reuid', String(PROXY_UID), '--regid', String(PROXY_UID), '--clear-groups', '--inh-caps', '+net_admin', '--ambient-caps', '+net_admin'];
    const proc = this.topo.spawn(this.ns(pod), `proxy-${pod}`, 'setpriv', [...setpriv, process.execPath, MAIN_JS, 'node'], { env: this.proxyEnv(p) });
    this.proxies.set(pod, proc);
    await this.waitReady(pod, proc, 30_000);
    return proc;
  }

  private async waitReady(pod: string, proc: NsProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (proc.exitStatus) throw new Error(`node proxy for ${pod} exited (${proc.exitStatus.code ?? proc.exitStatus.signal}) before ready; output:\n${proc.output().slice(-3000)}`);
      const r = await this.topo.exec(this.ns(pod), 'curl', ['-s', '-m', '1', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15021/healthz/ready']);
      last = r.stdout.trim();
      if (last === '200') return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`node proxy for ${pod} not ready within ${timeoutMs}ms (last readiness answer ${last || 'none'}); output:\n${proc.output().slice(-3000)}`);
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

  async metrics(pod: string): Promise<ParsedMetrics> {
    const r = await this.topo.exec(this.ns(pod), 'curl', ['-sS', '-m', '3', 'http://127.0.0.1:15020/metrics']);
    if (r.code !== 0) throw new Error(`scraping ${pod}'s proxy metrics failed: ${r.stderr}`);
    return parsePrometheusText(r.stdout);
  }

  /** JSON records the pod's proxy logged so far. */
  logs(pod: string): LogRecord[] {
    const out: LogRecord[] = [];
    for (const line of (this.proxies.get(pod)?.output() ?? '').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        /* a partial last line */
      }
    }
    return out;
  }

  /** Access-log closing lines ("connection complete" and policy closes) of the pod's proxy. */
  accessLogs(pod: string): LogRecord[] {
    return this.logs(pod).filter((r) => r['scope'] === 'access' && r['msg'] !== 'connection opened' && r['msg'] !== 'connection update');
  }

  async destroy(): Promise<string[]> {
    const problems = await this.topo.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}

export const EXT_IP = EXT.ip;
