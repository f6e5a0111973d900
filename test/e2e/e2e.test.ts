/**
 * End to end: ONE node proxy per node (`ztunnel-ts node`, INPOD_ENABLED) serving every pod
 * its node agent (`ztunnel-ts agent`) enrols over ZDS, with in-pod capture rules, two nodes,
 * mesh-unaware clients (curl, socat, a load generator) and servers. Root only; serial; one
 * topology for the whole file, torn down (processes by PID, namespaces, files) even when
 * setup or a test fails. See README.md.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootSkipReason, removeStaleNamespaces, run, type NsProcess } from '../helpers/netns';
import type { Sample } from '../helpers/prom-text';
import { E2eMesh, spiffe, HTTP_PORT, ECHO_PORT, EXT_IP, MAIN_JS, INITIAL_PODS, waitUntil, type LogRecord } from './mesh';
import { INTER_IF } from './topology';
import { loadNetnsAddon } from '../../src/inpod/netns-addon';
import { NodeAgent } from '../../src/inpod/agent';
import { ZdsCodec } from '../../src/inpod/zds-codec';
import { createLogger } from '../../src/logging/logger';

const skip = rootSkipReason(['ip', 'iptables', 'curl', 'socat', 'tcpdump']) ?? (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

const B1 = '10.2.1.2';
const B2 = '10.2.2.2';

const marker = (): string => `zt-marker-${randomBytes(6).toString('hex')}`;

/** Polls until fn returns a value (not undefined) or the time is up. */
async function eventually<T>(fn: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

const isOutbound = (r: LogRecord): boolean => r['direction'] === 'outbound';

interface LoadResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

/** A mesh-unaware client hammering host:port with short echo connections from a pod. */
async function startLoad(mesh: E2eMesh, from: string, host: string, port: number): Promise<{ stop: () => Promise<LoadResult> }> {
  const p = mesh.topo.spawn(mesh.ns(from), `load-${from}`, process.execPath, [path.join(__dirname, 'fixtures', 'loadgen.js'), host, String(port), '4', '120']);
  await p.waitFor(/^LOADGEN READY/, 15_000);
  return {
    stop: async () => {
      await p.stop('SIGTERM', 5_000);
      const line = p.output().split('\n').find((l) => l.startsWith('LOADGEN RESULT '));
      if (!line) throw new Error(`load generator in ${from} printed no result: ${p.output().slice(-500)}`);
      return JSON.parse(line.slice('LOADGEN RESULT '.length)) as LoadResult;
    },
  };
}
const isInbound = (r: LogRecord): boolean => r['direction'] === 'inbound';

/**
 * Starts tcpdump on node1's side of the inter-node link. --immediate-mode: without it packets
 * wait in the capture ring for a block timeout and a quick stop writes none of them.
 */
async function startTcpdump(mesh: E2eMesh): Promise<{ proc: NsProcess; file: string }> {
  const file = path.join(mesh.dir, `inter-${Date.now()}.pcap`);
  const proc = mesh.topo.spawn(mesh.ns('node1'), 'tcpdump', 'tcpdump', ['-i', INTER_IF, '-nn', '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp']);
  await proc.waitFor(/listening on/, 10_000);
  return { proc, file };
}

async function pcapText(file: string, filter: string[] = []): Promise<string> {
  const r = await run('tcpdump', ['-r', file, '-nn', '-A', ...filter]);
  return r.stdout;
}

async function pcapCount(file: string, filter: string[]): Promise<number> {
  const r = await run('tcpdump', ['-r', file, '-nn', ...filter]);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

if (skip !== null) {
  test.skip(`e2e: skipped: ${skip}`, () => undefined);
} else {
  const mesh = new E2eMesh();
  const suiteStart = Date.now();

  test.before(async () => {
    await removeStaleNamespaces();
    await mesh.start();
  });

  test.after.always(async (t) => {
    const problems = await mesh.destroy();
    t.log(`e2e setup timings: ${JSON.stringify(mesh.timings)}; suite ${Date.now() - suiteStart}ms`);
    if (problems.length) t.log('cleanup problems:', problems);
  });

  test.serial('one node proxy per node serves every enrolled pod, each with its capture rules (mark-only) installed by the agent', async (t) => {
    for (const pod of INITIAL_PODS) {
      const r = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-netns', mesh.ns(pod)], { env: { PATH: process.env['PATH'] } });
      t.is(r.code, 0, `${pod}: ${r.stdout}${r.stderr}`);
    }
    for (const node of ['node1', 'node2'] as const) {
      const m = await mesh.metrics(node);
      t.is(find(m.samples, 'workload_manager_active_proxy_count', {})?.value, 2, `${node} runs the proxies of its two pods`);
      t.is(find(m.samples, 'workload_manager_pending_proxy_count', {})?.value, 0);
    }
    const procs = await run('pgrep', ['-f', `${MAIN_JS} node`]);
    const ours = procs.stdout.split('\n').filter((pid) => [...mesh.proxies.values()].some((p) => String(p.pid) === pid.trim()));
    t.is(ours.length, 2, 'two node proxy processes in total for four pods');
  });

  test.serial('pod-to-pod across nodes is captured on both sides and carried over HBONE (no plaintext on the inter-node link)', async (t) => {
    const m = marker();
    const dump = await startTcpdump(mesh);
    const appBefore = mesh.apps.get('b1')!.output().split('HTTP CONNECTION').length;
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/${m}`);
    const e = await mesh.echo('a1', B1, ECHO_PORT, `${m}-echo\n`);
    await dump.proc.stop('SIGINT');
    t.is(r.code, 0, `curl a1 → b1 failed: ${r.stderr}`);
    t.regex(r.stdout, new RegExp(`^hello from b1; peer [0-9.]+; path /${m}$`, 'm'));
    t.is(e.stdout, `${m}-echo\n`, `echo a1 → b1 failed: ${e.stderr}`);
    t.true(mesh.apps.get('b1')!.output().split('HTTP CONNECTION').length > appBefore, 'b1 served the request');
    t.log(`curl a1 → b1 through both proxies: ${r.ms}ms (incl. process spawn)`);

    const hbonePackets = await pcapCount(dump.file, ['tcp port 15008']);
    const appPortPackets = await pcapCount(dump.file, [`tcp port ${HTTP_PORT} or tcp port ${ECHO_PORT}`]);
    const text = await pcapText(dump.file);
    t.true(hbonePackets > 0, `traffic crossed the link to port 15008; capture summary:\n${(await run('tcpdump', ['-r', dump.file, '-nn'])).stdout.split('\n').slice(0, 10).join('\n')}\ntcpdump output: ${dump.proc.output()}`);
    t.is(appPortPackets, 0, 'nothing crossed the link to the app ports');
    t.false(text.includes(m), 'the payload marker never appears in clear text on the link');
  });

  test.serial('source workload and identity are attributed by pod address in metrics and access logs on both proxies', async (t) => {
    const outBefore = mesh.accessLogs('a1').filter(isOutbound).length;
    const inBefore = mesh.accessLogs('b1').filter(isInbound).length;
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/attribution`);
    t.is(r.code, 0, r.stderr);
    const out = await eventually(() => mesh.accessLogs('a1').filter(isOutbound).slice(outBefore).find((l) => l['dst.workload'] === 'b1'), 'a1 outbound access log');
    const inn = await eventually(() => mesh.accessLogs('b1').filter(isInbound).slice(inBefore).find((l) => l['src.workload'] === 'a1'), 'b1 inbound access log');
    t.like(out, { 'src.workload': 'a1', 'src.namespace': 'default', 'src.identity': spiffe('a1'), 'dst.workload': 'b1', 'dst.addr': `${B1}:15008`, 'dst.hbone_addr': `${B1}:${HTTP_PORT}`, 'dst.identity': spiffe('b1') });
    t.regex(String(out['src.addr']), /^10\.1\.1\.2:\d+$/);
    t.like(inn, { 'src.workload': 'a1', 'src.identity': spiffe('a1'), 'dst.workload': 'b1', 'dst.identity': spiffe('b1') });
    t.regex(String(inn['src.addr']), /^10\.1\.1\.2:\d+$/);
    t.true(Number(out['bytes_recv']) > 0 && Number(inn['bytes_sent']) > 0);

    const a1m = await mesh.metrics('a1');
    const b1m = await mesh.metrics('b1');
    const common = { source_workload: 'a1', source_principal: spiffe('a1'), destination_workload: 'b1', destination_principal: spiffe('b1'), connection_security_policy: 'mutual_tls' };
    const src = find(a1m.samples, 'istio_tcp_connections_opened_total', { reporter: 'source', ...common });
    const dst = find(b1m.samples, 'istio_tcp_connections_opened_total', { reporter: 'destination', ...common });
    t.truthy(src, 'a1 reports the connection as source with both identities');
    t.truthy(dst, 'b1 reports the connection as destination with both identities');
    t.true((src?.value ?? 0) >= 1 && (dst?.value ?? 0) >= 1);
    t.truthy(find(b1m.samples, 'istio_tcp_received_bytes_total', { reporter: 'destination', source_workload: 'a1' }));
  });

  test.serial('an L4 DENY policy refuses the connection (a2 → b2) while a1 → b2 passes', async (t) => {
    const m = marker();
    const before = mesh.accessLogs('b2').length;
    const denied = await mesh.echo('a2', B2, ECHO_PORT, `${m}\n`);
    t.false(denied.stdout.includes(m), 'no echo through a denied connection');
    t.true(denied.ms < 6_000, `denied quickly (${denied.ms}ms)`);
    const rec = await eventually(() => mesh.accessLogs('b2').slice(before).find((l) => l['reason'] === 'DENY'), 'b2 DENY access log');
    t.like(rec, { direction: 'inbound', 'src.workload': 'a2', 'src.identity': spiffe('a2'), policy: 'default/deny-from-a2' });
    const ok = await mesh.echo('a1', B2, ECHO_PORT, `${m}-allowed\n`);
    t.is(ok.stdout, `${m}-allowed\n`, ok.stderr);
    const b2m = await mesh.metrics('b2');
    t.truthy(find(b2m.samples, 'istio_tcp_connections_closed_total', { reporter: 'destination', source_workload: 'a2', response_flags: 'DENY' }));
  });

  test.serial('STRICT refuses plaintext sent straight to the pod from outside the mesh; a non-STRICT pod takes it via 15006', async (t) => {
    const m = marker();
    const appConnsBefore = mesh.apps.get('b1')!.output().split('ECHO CONNECTION from 10.4.0.2').length;
    const before = mesh.accessLogs('b1').length;
    const strict = await mesh.echo('out', B1, ECHO_PORT, `${m}\n`);
    t.false(strict.stdout.includes(m), 'plaintext to a STRICT pod is refused');
    const rec = await eventually(() => mesh.accessLogs('b1').slice(before).find((l) => l['reason'] === 'DENY'), 'b1 STRICT DENY access log');
    t.like(rec, { direction: 'inbound', policy: 'istio-system/istio_converted_static_strict' });
    t.is(rec['src.identity'], undefined, 'no identity on plaintext');
    t.regex(String(rec['src.addr']), /^10\.4\.0\.2:\d+$/);
    t.is(mesh.apps.get('b1')!.output().split('ECHO CONNECTION from 10.4.0.2').length, appConnsBefore, 'the app never saw it');

    const b2Before = mesh.accessLogs('b2').filter(isInbound).length;
    const plain = await mesh.echo('out', B2, ECHO_PORT, `${m}-plain\n`);
    t.is(plain.stdout, `${m}-plain\n`, plain.stderr);
    const inb = await eventually(() => mesh.accessLogs('b2').filter(isInbound).slice(b2Before).find((l) => String(l['src.addr']).startsWith('10.4.0.2:')), 'b2 plaintext inbound access log');
    t.is(inb['src.identity'], undefined);
    t.is(inb['dst.workload'], 'b2');
  });

  test.serial('traffic to a non-mesh address passes through the proxy as plain TCP', async (t) => {
    const m = marker();
    const before = mesh.accessLogs('a1').filter(isOutbound).length;
    const r = await mesh.curl('a1', `http://${EXT_IP}:${HTTP_PORT}/${m}`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`^hello from ext; peer 10\\.1\\.1\\.2; path /${m}$`, 'm'));
    const rec = await eventually(() => mesh.accessLogs('a1').filter(isOutbound).slice(before).find((l) => l['dst.addr'] === `${EXT_IP}:${HTTP_PORT}`), 'a1 passthrough access log');
    t.is(rec['dst.hbone_addr'], undefined, 'not tunnelled');
    t.is(rec['src.workload'], 'a1');
  });

  test.serial("the proxy's own connections are not captured again (no loop), also with mark-only rules", async (t) => {
    const outBefore = mesh.accessLogs('a1').filter(isOutbound).length;
    const inBefore = mesh.accessLogs('b1').filter(isInbound).length;
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/once`);
    t.is(r.code, 0, r.stderr);
    await eventually(() => (mesh.accessLogs('b1').filter(isInbound).length > inBefore ? true : undefined), 'b1 inbound record');
    await new Promise((res) => setTimeout(res, 500));
    t.is(mesh.accessLogs('a1').filter(isOutbound).length - outBefore, 1, 'exactly one outbound record for one connection');
    t.is(mesh.accessLogs('b1').filter(isInbound).length - inBefore, 1, 'exactly one inbound record');

    // The rules have no uid exclusion (the agent installs mark-only rules, as istio-cni does):
    // only SO_MARK 0x539 on the sockets the node proxy makes in the pod keeps them from being
    // captured again. a2 has dialled neither b1 nor ext yet, so both connections below need
    // NEW sockets in a2's namespace (no pooled HBONE connection hides a missing mark).
    const hbone = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/mark-only`);
    t.is(hbone.code, 0, `HBONE from a2's namespace must carry the mark (else it loops into :15001): ${hbone.stderr.trim()}`);
    t.regex(hbone.stdout, /hello from b1/);
    const pass = await mesh.curl('a2', `http://${EXT_IP}:${HTTP_PORT}/mark-only`);
    t.is(pass.code, 0, `the passthrough dial from a2's namespace must carry the mark: ${pass.stderr}`);
    t.regex(pass.stdout, /hello from ext; peer 10\.1\.2\.2;/);
  });

  test.serial('pods are enrolled and removed over ZDS while traffic flows: a3 joins the mesh, then leaves it, a1 never misses a connection', async (t) => {
    const load = await startLoad(mesh, 'a1', B2, ECHO_PORT);
    const m = marker();
    // a3 is not enrolled: its traffic is plain (b2 sees an un-identified client via its 15006).
    const b2Before = mesh.accessLogs('b2').filter(isInbound).length;
    const plainBefore = await mesh.echo('a3', B2, ECHO_PORT, `${m}-before\n`);
    t.is(plainBefore.stdout, `${m}-before\n`, plainBefore.stderr);
    const recPlain = await eventually(() => mesh.accessLogs('b2').filter(isInbound).slice(b2Before).find((l) => String(l['src.addr']).startsWith('10.1.3.2:')), 'b2 plaintext record from a3');
    t.is(recPlain['src.identity'], undefined);

    await mesh.enrol('a3');
    const inBefore = mesh.accessLogs('b2').filter(isInbound).length;
    const viaMesh = await mesh.echo('a3', B2, ECHO_PORT, `${m}-enrolled\n`);
    t.is(viaMesh.stdout, `${m}-enrolled\n`, viaMesh.stderr);
    const rec = await eventually(() => mesh.accessLogs('b2').filter(isInbound).slice(inBefore).find((l) => l['src.workload'] === 'a3'), 'b2 mTLS record from a3');
    t.is(rec['src.identity'], spiffe('a3'), 'a3 now speaks HBONE with its own identity, from the same node proxy as a1');
    const out = await eventually(() => mesh.accessLogs('a3').filter(isOutbound).find((l) => l['dst.workload'] === 'b2'), 'node1 outbound record for a3');
    t.is(out['src.identity'], spiffe('a3'));

    await mesh.unenrol('a3');
    const listener = await mesh.topo.exec(mesh.ns('a3'), 'curl', ['-sS', '-m', '2', 'http://127.0.0.1:15001/']);
    t.regex(listener.stderr, /Connection refused|Couldn't connect/, 'a3 has no listeners any more');
    const check = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-netns', mesh.ns('a3')], { env: { PATH: process.env['PATH'] } });
    t.is(check.code, 1, 'and no capture rules');
    const after = await mesh.echo('a3', B2, ECHO_PORT, `${m}-left\n`);
    t.is(after.stdout, `${m}-left\n`, 'plain again');

    const r = await load.stop();
    t.log(`a1 → b2 during a3's add/del: ${JSON.stringify(r)}`);
    t.true(r.ok > 0);
    t.is(r.failed, 0, `a1's connections never failed: ${JSON.stringify(r.errors)}`);
  });

  test.serial('agent restart: pods stay served while it is away (not ready), its snapshot then removes the pod it no longer knows', async (t) => {
    const agent = mesh.agents.get('node1')!;
    await agent.stop('SIGTERM', 5_000);
    const proxy = mesh.proxies.get('node1')!;
    await waitUntil(async () => (await mesh.topo.exec(mesh.ns('node1'), 'curl', ['-s', '-m', '1', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15021/healthz/ready'])).stdout === '500', 'node1 proxy not ready without its agent');
    const served = await mesh.echo('a1', B2, ECHO_PORT, 'still-served\n');
    t.is(served.stdout, 'still-served\n', 'a1 is served while the agent is down');

    // While the agent is away, a2 is deleted from its records (its rules stay, as a real
    // deleted pod's namespace would go with them).
    mesh.forget('a2');
    const stoppedBefore = find((await mesh.metrics('node1')).samples, 'workload_manager_proxies_stopped_total', {})?.value ?? 0;
    const restarted = mesh.startAgent('node1');
    await restarted.waitFor(/node proxy connected: snapshot queued/, 20_000);
    await mesh.waitReady('node1', proxy);
    const m = await mesh.metrics('node1');
    t.is(find(m.samples, 'workload_manager_active_proxy_count', {})?.value, 1, 'only a1 is left');
    t.is(find(m.samples, 'workload_manager_proxies_stopped_total', {})?.value, stoppedBefore + 1);
    const b1Conns = (): number => mesh.apps.get('b1')!.output().split('HTTP CONNECTION from').length;
    const before = b1Conns();
    const gone = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/after-reconcile`, 3);
    t.not(gone.code, 0, 'a2 (not in the snapshot) is no longer served: its captured traffic is refused');
    t.is(b1Conns(), before, 'never bypassed');
    const a1ok = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/after-reconcile`);
    t.is(a1ok.code, 0, a1ok.stderr);

    await mesh.enrol('a2');
    const back = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/re-enrolled`);
    t.is(back.code, 0, `a2 re-enrolled: ${back.stderr}`);
  });

  test.serial('a stopped node proxy makes new captured connections fail fast instead of bypassing the mesh; a restarted one takes over', async (t) => {
    // Destination side: node2's proxy is gone; node1's proxy cannot reach b2:15008 and the
    // client gets an error quickly; plaintext from outside hits the dead :15006 and is refused.
    const b2Conns = (): number => mesh.apps.get('b2')!.output().split('CONNECTION from').length;
    const pre2 = await mesh.curl('a1', `http://${B2}:${HTTP_PORT}/before-stop`);
    t.is(pre2.code, 0, `precondition: a1 → b2 works while node2's proxy runs: ${pre2.stderr}`);
    const b2Before = b2Conns();
    await mesh.proxies.get('node2')!.stop('SIGTERM', 5_000);
    const viaHbone = await mesh.curl('a1', `http://${B2}:${HTTP_PORT}/peer-down`);
    t.not(viaHbone.code, 0);
    t.true(viaHbone.ms < 5_000, `peer down fails fast (${viaHbone.ms}ms): ${viaHbone.stderr.trim()}`);
    const plain = await mesh.echo('out', B2, ECHO_PORT, 'x\n', 2);
    t.is(plain.stdout, '');
    t.is(b2Conns(), b2Before, 'b2 app never reached while its node proxy is down');
    await mesh.startProxy('node2', { ready: true });
    const back2 = await mesh.curl('a1', `http://${B2}:${HTTP_PORT}/after-restart`);
    t.is(back2.code, 0, `a1 → b2 after node2's proxy restarted (agent snapshot): ${back2.stderr}`);

    // Source side: node1's proxy is gone, a2's rules still redirect to :15001 → refused at once.
    const b1Conns = (): number => mesh.apps.get('b1')!.output().split('HTTP CONNECTION from').length;
    const before = b1Conns();
    await mesh.proxies.get('node1')!.stop('SIGTERM', 5_000);
    const r = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/after-stop`);
    t.not(r.code, 0, 'no bypass: the connection fails');
    t.true(r.ms < 3_000, `fails fast (${r.ms}ms): ${r.stderr.trim()}`);
    t.is(b1Conns(), before, 'b1 never saw the connection (no plaintext bypass)');
    await mesh.startProxy('node1', { ready: true });
    const again = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/after-restart`);
    t.is(again.code, 0, `a2 → b1 after node1's proxy restarted: ${again.stderr}`);
  });

  test.serial('rolling update with INPOD_PORT_REUSE: a new node proxy takes over every pod, the old one drains, no connection attempt is refused', async (t) => {
    const a2app = mesh.topo.spawn(mesh.ns('a2'), 'app-a2', process.execPath, [path.join(__dirname, 'fixtures', 'apps.js'), 'a2', '0.0.0.0', String(HTTP_PORT), String(ECHO_PORT)]);
    await a2app.waitFor(/^APPS READY/, 10_000);
    const outbound = await startLoad(mesh, 'a1', B2, ECHO_PORT);
    const inbound = await startLoad(mesh, 'b2', '10.1.2.2', ECHO_PORT);
    const old = mesh.proxies.get('node1')!;
    const ports = { ADMIN_ADDR: '127.0.0.1:15100', STATS_ADDR: '127.0.0.1:15120', READINESS_ADDR: '127.0.0.1:15121' };
    const next = await mesh.startProxy('node1', { ready: true, label: 'proxy-node1-next', env: ports });
    const m = await mesh.metrics('node1', 15120);
    t.is(find(m.samples, 'workload_manager_active_proxy_count', {})?.value, 2, 'the new proxy opened both pods beside the old one');
    await new Promise((r) => setTimeout(r, 500));
    await old.stop('SIGTERM', 10_000);
    mesh.proxies.set('node1', next);
    await new Promise((r) => setTimeout(r, 1000));
    const o = await outbound.stop();
    const i = await inbound.stop();
    t.log(`outbound a1 → b2 across the swap: ${JSON.stringify(o)}; inbound b2 → a2: ${JSON.stringify(i)}`);
    t.true(o.ok > 0 && i.ok > 0);
    t.is(o.failed, 0, `outbound failures: ${JSON.stringify(o.errors)}`);
    const node2Failures = mesh.logs('node2').filter((l) => l['scope'] === 'access' && l['reason'] !== undefined).map((l) => `${String(l['reason'])}: ${String(l['error'])}`);
    t.is(i.failed, 0, `inbound failures: ${JSON.stringify(i.errors)}; node2 logged: ${node2Failures.slice(-5).join(' | ')}`);
    const after = await mesh.echo('a1', B2, ECHO_PORT, 'after-swap\n');
    t.is(after.stdout, 'after-swap\n', 'the new proxy serves alone');
  });

  test.serial('one process for many pods: RSS with 1 and with 50 pods, and descriptors stay flat over 1,000 enrol/un-enrol cycles', async (t) => {
    const support = loadNetnsAddon();
    if (!support.available) return t.fail(support.reason);
    const sock = path.join(mesh.dir, 'node1', 'measure.sock');
    const agent = new NodeAgent({ addon: support.addon, codec: new ZdsCodec(), socketPath: sock, podsFile: null, redirect: null, logger: createLogger({ level: 'warn', format: 'json' }) });
    await agent.start();
    t.teardown(() => agent.close());
    const names: string[] = [];
    for (let i = 0; i < 50; i++) names.push(await mesh.topo.addNamespace(`m${i}`));
    const env = { INPOD_UDS: sock, ADMIN_ADDR: '127.0.0.1:15200', STATS_ADDR: '127.0.0.1:15220', READINESS_ADDR: '127.0.0.1:15221' };
    const proxy = await mesh.startProxy('node1', { label: 'proxy-measure', env });
    await waitUntil(() => agent.connections === 1, 'the measured node proxy to connect');
    const pod = (i: number) => ({ uid: `measure-${i}`, name: `m${i}`, namespace: 'default', serviceAccount: 'a1', netns: names[i]! });
    const active = async (): Promise<number> => find((await mesh.metrics('node1', 15220)).samples, 'workload_manager_active_proxy_count', {})?.value ?? -1;
    const status = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${proxy.pid}/status`, 'utf8'))![1]);
    const fds = (): number => fs.readdirSync(`/proc/${proxy.pid}/fd`).length;
    const settle = () => new Promise((r) => setTimeout(r, 1500));

    await agent.enrol(pod(0));
    await waitUntil(async () => (await active()) === 1, 'one pod');
    await settle();
    const rss1 = status('VmRSS');
    for (let i = 1; i < 50; i++) await agent.enrol(pod(i));
    await waitUntil(async () => (await active()) === 50, 'fifty pods');
    await settle();
    const rss50 = status('VmRSS');
    const perPodKiB = (rss50 - rss1) / 49;
    t.log(`node proxy RSS: ${(rss1 / 1024).toFixed(1)} MiB with 1 pod, ${(rss50 / 1024).toFixed(1)} MiB with 50 pods: ${perPodKiB.toFixed(0)} KiB per added pod (target < 1024 KiB); the per-pod process model cost ~70 MiB per pod`);
    const fd50 = fds();

    for (let i = 1; i < 50; i++) await agent.unenrol(`measure-${i}`);
    await waitUntil(async () => (await active()) === 1, 'back to one pod');
    await agent.enrol(pod(1));
    await agent.unenrol('measure-1');
    // A pod's namespace descriptor lent to the worker threads closes once every thread has
    // confirmed the removal, a moment after the agent's answer: count once nothing moves.
    let before = fds();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = fds();
      if (now === before) break;
      before = now;
    }
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) {
      await agent.enrol(pod(1));
      await agent.unenrol('measure-1');
    }
    const cyclesMs = Date.now() - t0;
    let after = fds();
    for (let i = 0; i < 50 && after !== before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = fds();
    }
    const m = await mesh.metrics('node1', 15220);
    t.log(`descriptors of the node proxy: ${fd50} with 50 pods, ${before} with 1 pod before and ${after} after 1,000 enrol/un-enrol cycles (${cyclesMs} ms, ${(cyclesMs / 1000).toFixed(1)} ms per cycle); proxies started ${find(m.samples, 'workload_manager_proxies_started_total', {})?.value}`);
    t.is(after, before, 'descriptor count is flat after 1,000 cycles');
    t.is(await active(), 1);
    t.is(find(m.samples, 'workload_manager_proxies_started_total', {})?.value, 1 + 49 + 1 + 1000);
    await proxy.stop('SIGTERM', 5_000);
  });
}
