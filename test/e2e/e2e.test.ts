/**
 * End to end: real node proxies (`ztunnel-ts node`, one per pod netns, see README.md) with
 * in-pod capture rules, two nodes, mesh-unaware clients (curl, socat) and servers. Root only;
 * serial; one topology for the whole file, torn down (processes by PID, namespaces, files)
 * even when setup or a test fails.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootSkipReason, removeStaleNamespaces, run, type NsProcess } from '../helpers/netns';
import type { Sample } from '../helpers/prom-text';
import { E2eMesh, spiffe, HTTP_PORT, ECHO_PORT, EXT_IP, MAIN_JS, PROXY_UID, type LogRecord } from './mesh';
import { INTER_IF } from './topology';

const skip = rootSkipReason(['ip', 'iptables', 'curl', 'socat', 'tcpdump', 'setpriv']) ?? (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

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

  test.serial('every pod has its capture rules installed and current (redirect check)', async (t) => {
    for (const pod of ['a1', 'a2', 'b1', 'b2']) {
      const r = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-netns', mesh.ns(pod), '--redirect-proxy-uid', String(PROXY_UID)], { env: { PATH: process.env['PATH'] } });
      t.is(r.code, 0, `${pod}: ${r.stdout}${r.stderr}`);
    }
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

    // Rules without the uid exclusion: only SO_MARK on the proxy's sockets prevents the loop
    // (ztunnel's model). a2's proxy has dialed neither b1 nor ext yet, so both connections
    // below need NEW proxy sockets (no pooled HBONE connection hides a missing mark); its
    // certificate is already cached, so the CA is not needed meanwhile.
    await mesh.installRedirect('a2', false);
    try {
      const hbone = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/mark-only`);
      const markLog = mesh.logs('a2').filter((l) => /SO_MARK/.test(String(l['msg']))).map((l) => `${String(l['msg'])}: ${String(l['err'] ?? '')}`)[0] ?? 'no SO_MARK message';
      t.is(hbone.code, 0, `with mark-only capture rules the HBONE dial must carry SO_MARK 0x539 (else it loops into :15001): ${hbone.stderr.trim()}; a2's proxy logged: ${markLog}`);
      t.regex(hbone.stdout, /hello from b1/);
      const pass = await mesh.curl('a2', `http://${EXT_IP}:${HTTP_PORT}/mark-only`);
      t.is(pass.code, 0, `with mark-only capture rules the passthrough dial must carry SO_MARK 0x539: ${pass.stderr}`);
      t.regex(pass.stdout, /hello from ext/);
    } finally {
      await mesh.installRedirect('a2', true);
    }
  });

  test.serial('a stopped node proxy makes new captured connections fail fast instead of bypassing the mesh; a restarted one takes over', async (t) => {
    // Source side: a2's proxy is gone, a2's rules still redirect to :15001 → refused at once.
    const b1Conns = (): number => mesh.apps.get('b1')!.output().split('HTTP CONNECTION from').length;
    const pre = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/before-stop`);
    t.is(pre.code, 0, `precondition: a2 → b1 works while a2's proxy runs: ${pre.stderr}`);
    const before = b1Conns();
    await mesh.proxies.get('a2')!.stop('SIGTERM', 5_000);
    const r = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/after-stop`);
    t.not(r.code, 0, 'no bypass: the connection fails');
    t.true(r.ms < 3_000, `fails fast (${r.ms}ms): ${r.stderr.trim()}`);
    t.is(b1Conns(), before, 'b1 never saw the connection (no plaintext bypass)');

    // Destination side: b2's proxy is gone; a1's proxy cannot reach b2:15008 and the client
    // gets an error quickly; plaintext from outside hits the dead :15006 and is refused too.
    const b2Conns = (): number => mesh.apps.get('b2')!.output().split('CONNECTION from').length;
    const pre2 = await mesh.curl('a1', `http://${B2}:${HTTP_PORT}/before-stop`);
    t.is(pre2.code, 0, `precondition: a1 → b2 works while b2's proxy runs: ${pre2.stderr}`);
    const b2Before = b2Conns();
    await mesh.proxies.get('b2')!.stop('SIGTERM', 5_000);
    const viaHbone = await mesh.curl('a1', `http://${B2}:${HTTP_PORT}/peer-down`);
    t.not(viaHbone.code, 0);
    t.true(viaHbone.ms < 5_000, `peer down fails fast (${viaHbone.ms}ms): ${viaHbone.stderr.trim()}`);
    const plain = await mesh.echo('out', B2, ECHO_PORT, 'x\n', 2);
    t.is(plain.stdout, '');
    t.is(b2Conns(), b2Before, 'b2 app never reached while its proxy is down');

    // A restarted proxy takes over the same in-pod rules (a rollout needs no rule changes).
    await mesh.startProxy('a2');
    const again = await mesh.curl('a2', `http://${B1}:${HTTP_PORT}/after-restart`);
    t.is(again.code, 0, `a2 → b1 after a2's proxy restarted: ${again.stderr}`);
  });
}
