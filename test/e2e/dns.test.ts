/**
 * The DNS proxy end to end, in-pod, on its own copy of the e2e topology (see README.md): the
 * agents install the DNS rules with the capture rules (DNS_CAPTURE=true), the node proxies
 * listen on 127.0.0.1:15053 inside every pod and forward from there with the mark to dnsmasq
 * in `ext` (an independent nameserver that knows nothing of the mesh). Pod a1's own resolver
 * (glibc, its resolv.conf naming ext's dnsmasq with Kubernetes' search list) resolves a name
 * only the mesh knows, and curl then reaches it through the mesh over HBONE. Root only.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { rootSkipReason, removeStaleNamespaces, run } from '../helpers/netns';
import { E2eMesh, EXT_IP, HTTP_PORT, localConfigYaml, MAIN_JS, podUid, waitUntil, type NodeName } from './mesh';

const skip =
  rootSkipReason(['ip', 'iptables', 'curl', 'socat', 'dig', 'dnsmasq', 'getent']) ??
  (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

const SVC = 'b1svc.default.svc.cluster.local';
const VIP = '10.96.0.10';

/** The e2e mesh with DNS capture on (proxies and agents) and a Service only the mesh knows, backed by b1. */
class DnsMesh extends E2eMesh {
  override nodeEnv(node: NodeName, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return super.nodeEnv(node, { DNS_CAPTURE: 'true', DNS_UPSTREAMS: `${EXT_IP}:53`, DNS_FORWARD_TIMEOUT: '2s', ...extra });
  }

  protected override agentExtraEnv(): Record<string, string> {
    return { DNS_CAPTURE: 'true' };
  }

  protected override localConfig(): string {
    const doc = parseYaml(localConfigYaml()) as { workloads: { uid: string; services?: unknown }[]; services?: unknown[] };
    const b1 = doc.workloads.find((w) => w.uid === podUid('b1'));
    if (b1) b1.services = { [`default/${SVC}`]: { 80: HTTP_PORT } };
    doc.services = [{ name: 'b1svc', namespace: 'default', hostname: SVC, vips: [`/${VIP}`], ports: { 80: HTTP_PORT }, subjectAltNames: ['spiffe://cluster.local/ns/default/sa/b1'] }];
    return stringifyYaml(doc);
  }
}

if (skip !== null) {
  test.skip(`e2e dns: skipped: ${skip}`, () => undefined);
} else {
  const mesh = new DnsMesh();
  let resolvDir = '';
  let dnsmasq: ReturnType<typeof mesh.topo.spawn>;

  test.before(async () => {
    await removeStaleNamespaces();
    await mesh.start();
    // ext runs the "cluster DNS": an independent nameserver that knows outside.test only.
    dnsmasq = mesh.topo.spawn(mesh.ns('ext'), 'dnsmasq', 'dnsmasq', ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${EXT_IP}`, '--port=53', '--pid-file', '--user=', '--local=/test/', '--local=/cluster.local/', `--address=/outside.test/${EXT_IP}`, '--log-queries', '--log-facility=-']);
    for (let i = 0; i < 50; i++) {
      const r = await mesh.topo.exec(mesh.ns('ext'), 'dig', [`@${EXT_IP}`, '+tries=1', '+time=1', 'outside.test']);
      if (/status: NOERROR/.test(r.stdout)) break;
      if (dnsmasq.exitStatus) throw new Error(`dnsmasq exited: ${dnsmasq.output()}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    // a1's resolver, as the kubelet writes it: the cluster DNS and Kubernetes' search list.
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
    resolvDir = `/etc/netns/${mesh.ns('a1')}`;
    fs.mkdirSync(resolvDir, { recursive: true });
    fs.writeFileSync(path.join(resolvDir, 'resolv.conf'), `nameserver ${EXT_IP}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
  });

  test.after.always(async (t) => {
    if (resolvDir) fs.rmSync(resolvDir, { recursive: true, force: true });
    const problems = await mesh.destroy();
    if (problems.length) t.log('cleanup problems:', problems);
  });

  test.serial("the agent installed the DNS redirects with the capture rules, and check verifies them", async (t) => {
    const out = await mesh.topo.exec(mesh.ns('a1'), 'iptables', ['-t', 'nat', '-S', 'ZTUNNEL-OUTPUT']);
    t.regex(out.stdout, /-A ZTUNNEL-OUTPUT ! -o lo -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053/);
    t.regex(out.stdout, /-A ZTUNNEL-OUTPUT ! -d 127\.0\.0\.1\/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053/);
    const check = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-netns', mesh.ns('a1'), '--dns-capture'], { env: { PATH: process.env['PATH'] } });
    t.is(check.code, 0, check.stdout + check.stderr);
  });

  test.serial('the cluster DNS does not know the mesh-only name (what the pod would get without the proxy)', async (t) => {
    const r = await mesh.topo.exec(mesh.ns('ext'), 'dig', [`@${EXT_IP}`, '+tries=1', '+time=2', SVC]);
    t.regex(r.stdout, /status: NXDOMAIN/);
  });

  test.serial("a captured pod resolves a mesh-only name through its normal resolver (full name and short name), over UDP and TCP", async (t) => {
    const full = await mesh.topo.exec(mesh.ns('a1'), 'getent', ['ahostsv4', SVC]);
    t.is(full.code, 0, full.stderr);
    t.regex(full.stdout, new RegExp(`^${VIP.replace(/\./g, '\\.')}\\s+STREAM`, 'm'));
    const short = await mesh.topo.exec(mesh.ns('a1'), 'getent', ['ahostsv4', 'b1svc']);
    t.regex(short.stdout, new RegExp(`^${VIP.replace(/\./g, '\\.')}\\s`, 'm'), 'the search list applies, the proxy answers b1svc.default.svc.cluster.local');
    const tcp = await mesh.topo.exec(mesh.ns('a1'), 'dig', ['+tcp', '+tries=1', '+time=2', SVC]);
    t.regex(tcp.stdout, /status: NOERROR/);
    t.regex(tcp.stdout, /flags: qr aa rd ra/);
    t.regex(tcp.stdout, new RegExp(`${SVC.replace(/\./g, '\\.')}\\.\\s+30\\s+IN\\s+A\\s+${VIP.replace(/\./g, '\\.')}`));
  });

  test.serial('…and then connects to it by name through the mesh (VIP → b1 over HBONE)', async (t) => {
    const r = await mesh.curl('a1', `http://${SVC}/by-name`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^hello from b1; peer [\d.]+; path \/by-name\n$/);
    const short = await mesh.curl('a1', 'http://b1svc/short');
    t.regex(short.stdout, /^hello from b1; .*path \/short\n$/, short.stderr);
    const logs = (): Record<string, unknown>[] => mesh.accessLogs('a1').filter((l) => l['direction'] === 'outbound' && l['dst.service'] === SVC);
    await waitUntil(() => logs().length >= 2, 'both connections in the access log', 5000);
    t.is(logs()[0]?.['dst.hbone_addr'], `10.2.1.2:${HTTP_PORT}`);
  });

  test.serial('names outside the mesh are forwarded from inside the pod (marked, so not captured again) to the cluster DNS', async (t) => {
    const r = await mesh.topo.exec(mesh.ns('a1'), 'getent', ['ahostsv4', 'outside.test']);
    t.regex(r.stdout, new RegExp(`^${EXT_IP.replace(/\./g, '\\.')}\\s`, 'm'), r.stderr);
    const tcp = await mesh.topo.exec(mesh.ns('a1'), 'dig', ['+tcp', '+tries=1', '+time=3', 'outside.test']);
    t.regex(tcp.stdout, new RegExp(`outside\\.test\\.\\s+\\d+\\s+IN\\s+A\\s+${EXT_IP.replace(/\./g, '\\.')}`));
    const nx = await mesh.topo.exec(mesh.ns('a1'), 'dig', ['+tries=1', '+time=3', 'nothing.test']);
    t.regex(nx.stdout, /status: NXDOMAIN/, 'the upstream NXDOMAIN is relayed');
    // dnsmasq saw the queries from a1's own address: they left the pod, not the node.
    t.regex(dnsmasq.output(), /query\[A\] outside\.test from 10\.1\.1\.2/);
  });

  test.serial("node1's DNS metrics count a1's queries, local and forwarded", async (t) => {
    const m = await mesh.metrics('node1');
    const sum = (name: string): number => m.samples.filter((s) => s.name === name && s.labels['source_canonical_service'] === 'a1').reduce((a, s) => a + s.value, 0);
    t.true(sum('istio_dns_requests_total') >= 6, String(sum('istio_dns_requests_total')));
    t.true(sum('istio_dns_upstream_requests_total') >= 2);
    t.is(sum('istio_dns_upstream_failures_total'), 0);
  });
}
