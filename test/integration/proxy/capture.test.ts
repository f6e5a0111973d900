import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCapture } from '../../../src/native/capture';
import { Topology, rootSkipReason, type NsProcess } from '../../helpers/netns';
import { renderLocalConfig } from '../../helpers/node-harness';

const ROOT = resolve(__dirname, '../../../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const capture = loadCapture();
const skip = rootSkipReason(['ip', 'iptables', 'socat', 'setpriv']) ?? (capture.available ? null : capture.reason);

/**
 * Real transparent capture: in a network namespace this test creates, iptables REDIRECTs a
 * client's connection to the node proxy's 0.0.0.0:15001; the proxy reads the original
 * destination with SO_ORIGINAL_DST, attributes the connection to the workload owning the
 * client IP and passes it through to the real destination. The client runs as `nobody`
 * and only its traffic is redirected, so the proxy's own dial is not captured again.
 */
if (skip !== null) {
  test.skip(`captured outbound (SO_ORIGINAL_DST) — skipped: ${skip}`, () => undefined);
} else {
  test('transparent capture: REDIRECT → 15001 (outbound passthrough) and → 15006 (plaintext inbound), destinations from SO_ORIGINAL_DST', async (t) => {
    const topo = new Topology('cap');
    const dir = mkdtempSync(join(tmpdir(), 'zt-capture-'));
    t.teardown(async () => {
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
    });
    const ns = await topo.addNamespace('pod');
    for (const a of ['10.77.0.10/32', '10.77.0.20/32', '10.77.0.50/32']) await topo.exec(ns, 'ip', ['addr', 'add', a, 'dev', 'lo']);
    const xds = join(dir, 'local.yaml');
    writeFileSync(xds, renderLocalConfig({ workloads: [{ name: 'pod', ips: ['10.77.0.10'], node: 'capnode' }, { name: 'server', ips: ['10.77.0.20'], node: 'capnode' }] }));
    topo.spawn(ns, 'echo', 'socat', ['TCP-LISTEN:9000,bind=10.77.0.50,fork,reuseaddr', 'EXEC:cat']);
    topo.spawn(ns, 'app', 'socat', ['TCP-LISTEN:8080,bind=10.77.0.20,fork,reuseaddr', 'EXEC:cat']);
    const proxy: NsProcess = topo.spawn(ns, 'node-proxy', process.execPath, [CLI, 'node'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        NODE_NAME: 'capnode',
        LOCAL_XDS_PATH: xds,
        OUTBOUND_ADDR: '0.0.0.0:15001',
        INBOUND_ADDR: '',
        INBOUND_PLAINTEXT_ADDR: '0.0.0.0:15006',
        ADMIN_ADDR: '127.0.0.1:15000',
        STATS_ADDR: '127.0.0.1:15020',
        READINESS_ADDR: '127.0.0.1:15021',
        CA_ADDRESS: 'https://127.0.0.1:1',
        LOG_LEVEL: 'info',
        IPV6_ENABLED: 'false',
      },
    });
    await proxy.waitFor(/"msg":"started"/, 15_000);
    t.regex(proxy.output(), /transparent capture available/);
    await topo.exec(ns, 'iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.77.0.50', '--dport', '9000', '-m', 'owner', '--uid-owner', '65534', '-j', 'REDIRECT', '--to-ports', '15001']);
    const r = await topo.exec(ns, 'setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'socat', '-', 'TCP:10.77.0.50:9000,bind=10.77.0.10'], { input: 'captured!', timeoutMs: 10_000 });
    t.is(r.stdout, 'captured!', r.stderr);
    const line = await proxy.waitFor(/"msg":"connection complete"/, 5000);
    const rec = JSON.parse(line) as Record<string, unknown>;
    t.like(rec, { scope: 'access', direction: 'outbound', 'dst.addr': '10.77.0.50:9000', 'src.workload': 'pod', bytes_sent: 9, bytes_recv: 9 });
    t.regex(String(rec['src.addr']), /^10\.77\.0\.10:\d+$/);

    // Inbound plaintext (15006): the original destination names the local workload and port;
    // authorization runs without a peer identity, then the app is dialled.
    await topo.exec(ns, 'iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.77.0.20', '--dport', '8080', '-m', 'owner', '--uid-owner', '65534', '-j', 'REDIRECT', '--to-ports', '15006']);
    const r2 = await topo.exec(ns, 'setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'socat', '-', 'TCP:10.77.0.20:8080,bind=10.77.0.10'], { input: 'plaintext in', timeoutMs: 10_000 });
    t.is(r2.stdout, 'plaintext in', r2.stderr);
    const inLine = await proxy.waitFor(/"direction":"inbound".*"msg":"connection complete"|"msg":"connection complete".*"direction":"inbound"/, 5000);
    t.like(JSON.parse(inLine) as Record<string, unknown>, { 'dst.addr': '10.77.0.20:8080', 'dst.workload': 'server', 'src.workload': 'pod', bytes_sent: 12, bytes_recv: 12 });
  });
}
