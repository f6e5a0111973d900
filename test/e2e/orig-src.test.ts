/**
 * Original source (ENABLE_ORIG_SRC) end to end, on its own topology (see README.md): the
 * node proxy dials the destination app from a socket made in the app's pod, bound to the
 * client pod's IP (IP_TRANSPARENT + IP_FREEBIND, a port-less bind before connect), and the
 * in-pod routing the agent installs with the rules (mangle connmark 0x111, ip rule fwmark
 * 0x111/0xfff lookup 100, local default route via lo) brings the app's replies back to the
 * proxy. node2's proxy leaves ENABLE_ORIG_SRC unset (detected: it holds CAP_NET_ADMIN),
 * node1's sets it to false: b1's app sees the client's IP, a2's app its own IP. Root only.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootSkipReason, removeStaleNamespaces, run } from '../helpers/netns';
import { E2eMesh, HTTP_PORT, ECHO_PORT, MAIN_JS, type NodeName } from './mesh';

const skip = rootSkipReason(['ip', 'iptables', 'curl', 'socat']) ?? (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

const A1 = '10.1.1.2';
const B1 = '10.2.1.2';
const A2 = '10.1.2.2';

/** The e2e mesh with node1's proxy told not to keep the source (node2's detects it). */
class OrigSrcMesh extends E2eMesh {
  override nodeEnv(node: NodeName, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return super.nodeEnv(node, node === 'node1' ? { ENABLE_ORIG_SRC: 'false', ...extra } : extra);
  }
}

if (skip !== null) {
  test.skip(`e2e orig-src: skipped: ${skip}`, () => undefined);
} else {
  const mesh = new OrigSrcMesh();

  test.before(async () => {
    await removeStaleNamespaces();
    await mesh.start();
  });

  test.after.always(async (t) => {
    const problems = await mesh.destroy();
    if (problems.length) t.log('cleanup problems:', problems);
  });

  test.serial("the agent's redirect install added the original-source routing, and check verifies it", async (t) => {
    for (const pod of ['b1', 'b2']) {
      const ns = mesh.ns(pod);
      const rule = await mesh.topo.exec(ns, 'ip', ['-4', 'rule', 'list', 'fwmark', '0x111/0xfff', 'lookup', '100']);
      t.regex(rule.stdout, /fwmark 0x111\/0xfff lookup 100/, pod);
      t.regex((await mesh.topo.exec(ns, 'ip', ['-4', 'route', 'show', 'table', '100'])).stdout, /^local default dev lo/m, pod);
      t.regex((await mesh.topo.exec(ns, 'iptables', ['-t', 'mangle', '-S', 'ZTUNNEL-PREROUTING'])).stdout, /-m mark --mark 0x539\/0xfff -j CONNMARK --set-xmark 0x111\/0xfff/, pod);
      const check = await run(process.execPath, [MAIN_JS, 'redirect', 'check', '--redirect-netns', ns], { env: { PATH: process.env['PATH'] } });
      t.is(check.code, 0, `${pod}: ${check.stdout}${check.stderr}`);
    }
  });

  test.serial("with original source detected, b1's app sees a1's pod IP (HTTP and plain TCP)", async (t) => {
    const logs = mesh.logs('node2').filter((l) => l['msg'] === "inbound connections reach apps from the client's own IP");
    t.is(logs.length, 1, 'the proxy said once that it keeps the source, and why');
    t.is(logs[0]!['reason'], 'IP_TRANSPARENT is permitted (ENABLE_ORIG_SRC unset)');
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/orig-src`);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, `hello from b1; peer ${A1}; path /orig-src\n`);
    const e = await mesh.echo('a1', B1, ECHO_PORT, 'orig-src-echo\n');
    t.is(e.stdout, 'orig-src-echo\n', e.stderr);
    t.regex(mesh.apps.get('b1')!.output(), new RegExp(`ECHO CONNECTION from ${A1.replace(/\./g, '\\.')}\\n`));
  });

  test.serial("with ENABLE_ORIG_SRC=false, a2's app sees its own pod IP (the proxy's socket in its pod)", async (t) => {
    t.is(mesh.logs('node1').filter((l) => l['msg'] === "inbound connections reach apps from the proxy's address" && l['reason'] === 'ENABLE_ORIG_SRC=false').length, 1);
    const app = mesh.topo.spawn(mesh.ns('a2'), 'app-a2', process.execPath, [path.join(__dirname, 'fixtures', 'apps.js'), 'a2', '0.0.0.0', String(HTTP_PORT), String(ECHO_PORT)]);
    await app.waitFor(/^APPS READY/, 10_000);
    const r = await mesh.curl('b1', `http://${A2}:${HTTP_PORT}/plain-src`);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, `hello from a2; peer ${A2}; path /plain-src\n`);
  });

  test.serial('many original-source connections in a row all succeed (port-less binds, replies routed back)', async (t) => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => mesh.curl('a1', `http://${B1}:${HTTP_PORT}/n${i}`)));
    t.deepEqual(
      results.map((r) => r.stdout),
      results.map((_, i) => `hello from b1; peer ${A1}; path /n${i}\n`),
    );
  });

  test.serial("un-enrolling a pod removes the original-source routing with the capture rules (the agent's redirect remove)", async (t) => {
    const ns = mesh.ns('b2');
    await mesh.unenrol('b2');
    t.is((await mesh.topo.exec(ns, 'ip', ['-4', 'rule', 'list', 'fwmark', '0x111/0xfff'])).stdout.trim(), '');
    t.is((await mesh.topo.exec(ns, 'ip', ['-4', 'route', 'show', 'table', '100'])).stdout.trim(), '');
    t.not((await mesh.topo.exec(ns, 'iptables', ['-t', 'mangle', '-S', 'ZTUNNEL-PREROUTING'])).code, 0, 'the mangle chain is gone');
  });
}
