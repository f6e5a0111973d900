/**
 * PROXY protocol delivery end to end, on its own topology (see README.md): b1 and b2 have
 * an application tunnel `{protocol: PROXY, port: 15088}`. node2's proxy, in-pod, dials the
 * tunnel at the pod's loopback from a socket made in the pod (LOCALHOST_APP_TUNNEL, as
 * ztunnel), so the tunnel port listens on 127.0.0.1 only. In b2 the listener is the Python
 * PROXY v2 reader written from the protocol's specification (it reports the header, TLVs
 * included, then echoes); in b1 it is HAProxy with `accept-proxy`. Both must see a1's pod
 * IP as the source, the address a1 asked for as the destination, and (Python) a1's
 * SPIFFE identity in TLV 0xD0. Root only.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootSkipReason, removeStaleNamespaces } from '../helpers/netns';
import { haproxySkipReason, pythonSkipReason, PP2_SCRIPT, haproxyConfig } from '../helpers/proxy-v2';
import { E2eMesh, HTTP_PORT, localConfigYaml, podUid, spiffe, waitUntil } from './mesh';
import { NodeAgent } from '../../src/inpod/agent';
import { loadNetnsAddon } from '../../src/inpod/netns-addon';
import { ZdsCodec } from '../../src/inpod/zds-codec';
import { createLogger } from '../../src/logging/logger';

const skip =
  rootSkipReason(['ip', 'iptables', 'curl', 'socat']) ??
  pythonSkipReason() ??
  haproxySkipReason() ??
  (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

const A1 = '10.1.1.2';
const B1 = '10.2.1.2';
const B2 = '10.2.2.2';
const TUNNEL_PORT = 15088;
const TUNNEL = `    applicationTunnel: {protocol: PROXY, port: ${TUNNEL_PORT}}`;

class TunnelMesh extends E2eMesh {
  protected override localConfig(): string {
    return localConfigYaml({ b1: TUNNEL, b2: TUNNEL });
  }
}

if (skip !== null) {
  test.skip(`e2e application tunnel: skipped: ${skip}`, () => undefined);
} else {
  const mesh = new TunnelMesh();

  test.before(async () => {
    await removeStaleNamespaces();
    await mesh.start();
    const reader = mesh.topo.spawn(mesh.ns('b2'), 'pp2-b2', '/usr/bin/python3', [PP2_SCRIPT, 'serve', '127.0.0.1', String(TUNNEL_PORT)]);
    await reader.waitFor(/^READY /, 10_000);
    const cfg = path.join(mesh.dir, 'haproxy-b1.cfg');
    fs.writeFileSync(cfg, haproxyConfig(`127.0.0.1:${TUNNEL_PORT}`), { mode: 0o644 });
    const hap = mesh.topo.spawn(mesh.ns('b1'), 'haproxy-b1', 'haproxy', ['-db', '-f', cfg]);
    for (let i = 0; ; i++) {
      const probe = await mesh.topo.exec(mesh.ns('b1'), 'ss', ['-tlnH', `sport = :${TUNNEL_PORT}`]);
      if (probe.stdout.includes(`127.0.0.1:${TUNNEL_PORT}`)) break;
      if (i > 100) throw new Error(`haproxy did not listen in b1: ${hap.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  test.after.always(async (t) => {
    const problems = await mesh.destroy();
    if (problems.length) t.log('cleanup problems:', problems);
  });

  test.serial("b2's tunnel reads a v2 header: a1's pod IP, the address a1 asked for, a1's identity in TLV 0xD0; then the bytes", async (t) => {
    const r = await mesh.echo('a1', B2, HTTP_PORT, 'through-the-tunnel\n');
    t.is(r.code, 0, r.stderr);
    const [line, rest] = r.stdout.split('\n');
    const info = JSON.parse(line ?? '') as Record<string, unknown>;
    t.like(info, { version: 2, command: 'PROXY', family: 'INET', transport: 'STREAM', dst: `${B2}:${HTTP_PORT}`, tlvs: { '0xd0': spiffe('a1') } }, line);
    t.regex(String(info['src']), new RegExp(`^${A1.replace(/\./g, '\\.')}:\\d+$`));
    t.is(rest, 'through-the-tunnel');
  });

  test.serial("b1's tunnel is HAProxy (accept-proxy): it takes a1's pod IP and the requested address from the header", async (t) => {
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/whoami`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`^src=${A1.replace(/\./g, '\\.')}:\\d+ dst=${B1.replace(/\./g, '\\.')}:${HTTP_PORT} proxied=1\\n$`), r.stdout);
  });

  test.serial('the tunnel port is reached only through the proxy: it does not listen on the pod IP', async (t) => {
    const direct = await mesh.topo.exec(mesh.ns('b2'), 'ss', ['-tlnH', `sport = :${TUNNEL_PORT}`]);
    t.regex(direct.stdout, new RegExp(`127\\.0\\.0\\.1:${TUNNEL_PORT}`));
    t.notRegex(direct.stdout, new RegExp(`${B2.replace(/\./g, '\\.')}:${TUNNEL_PORT}|0\\.0\\.0\\.0:${TUNNEL_PORT}`));
    const rec = mesh.accessLogs('b2').find((l) => l['dst.hbone_addr'] === `${B2}:${HTTP_PORT}` && l['direction'] === 'inbound');
    t.truthy(rec, 'node2 recorded the tunnelled connection');
    t.is(rec!['src.identity'], spiffe('a1'));
  });

  test.serial("in-pod /config_dump workloadState lists the pods the node agent handed over ZDS, not the state file's workloads", async (t) => {
    const support = loadNetnsAddon();
    if (!support.available) return t.fail(support.reason);
    const sock = path.join(mesh.dir, 'node1', 'dump.sock');
    const agent = new NodeAgent({ addon: support.addon, codec: new ZdsCodec(), socketPath: sock, podsFile: null, redirect: null, logger: createLogger({ level: 'warn', format: 'json' }) });
    await agent.start();
    t.teardown(() => agent.close());
    const netns = await mesh.topo.addNamespace('ghost');
    const env = { INPOD_UDS: sock, ADMIN_ADDR: '127.0.0.1:15300', STATS_ADDR: '127.0.0.1:15320', READINESS_ADDR: '127.0.0.1:15321' };
    const proxy = await mesh.startProxy('node1', { label: 'proxy-dump', env });
    t.teardown(() => proxy.stop('SIGTERM', 5_000));
    await waitUntil(() => agent.connections === 1, 'the node proxy to connect to the agent');
    await agent.enrol({ uid: 'ghost-uid', name: 'ghost', namespace: 'default', serviceAccount: 'ghost-sa', netns });
    const dump = async (): Promise<Record<string, unknown>> => {
      const r = await mesh.topo.exec(mesh.ns('node1'), 'curl', ['-sS', '-m', '3', 'http://127.0.0.1:15300/config_dump']);
      return r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
    };
    await waitUntil(async () => Object.keys((await dump())['workloadState'] ?? {}).length > 0, 'the enrolled pod in workloadState');
    const d = await dump();
    t.deepEqual(d['workloadState'], { 'ghost-uid': { state: 'Up', info: { name: 'ghost', namespace: 'default', serviceAccount: 'ghost-sa' } } });
    t.true((d['workloads'] as { uid: string }[]).some((w) => w.uid === podUid('a1')), "the state file names node1's a1, which this proxy was not handed");
  });
}
