/**
 * The rules `ztunnel-ts redirect install` writes really steer traffic as ztunnel's in-pod
 * rules do, for each backend (iptables-nft, iptables-legacy, and nftables for hosts without
 * iptables): the pod's outgoing TCP lands on :15001 with its original
 * destination readable via SO_ORIGINAL_DST, incoming TCP lands on :15006, :15008 and the
 * excluded ports are reached directly, marked sockets and loopback are never captured, and
 * after remove nothing is. Root only.
 */
import test from 'ava';
import * as path from 'node:path';
import { Topology, rootSkipReason, missingTools, runOk, type RunResult } from '../../helpers/netns';

const MAIN = path.resolve(__dirname, '../../../src/cli/main.js');
const SERVER = path.join(__dirname, 'fixtures', 'capture-server.js');
const MARKED_CLIENT = path.join(__dirname, 'fixtures', 'marked-client.js');
const skip = rootSkipReason(['ip', 'iptables', 'socat']);

interface Answer {
  listener?: number;
  dst?: string;
  source?: string;
}

/** socat as a mesh-unaware client: connects, reads the server's one JSON line. */
async function ask(topo: Topology, ns: string, target: string, extra = ''): Promise<Answer & { raw: RunResult }> {
  const r = await topo.exec(ns, 'socat', ['-T3', '-', `${target},connect-timeout=3${extra}`], { input: '', timeoutMs: 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return { ...(JSON.parse(line) as Answer), raw: r };
  } catch {
    return { raw: r };
  }
}

const BACKENDS = [
  { name: 'nft', tools: ['iptables-nft'] },
  { name: 'legacy', tools: ['iptables-legacy'] },
  { name: 'nftables', tools: ['nft'] },
] as const;

if (skip !== null) {
  test.skip(`capture path: skipped: ${skip}`, () => undefined);
} else {
  for (const backend of BACKENDS) {
    const missing = missingTools(backend.tools);
    if (missing.length > 0) {
      test.skip(`capture path with REDIRECT_IPTABLES=${backend.name}: skipped: ${missing.join(', ')} not installed`, () => undefined);
      continue;
    }
    test.serial(`REDIRECT_IPTABLES=${backend.name}: outbound → 15001 with original destination, inbound → 15006, 15008/excluded/marked/loopback untouched`, async (t) => {
      const topo = new Topology(`cap${backend.name.replace(/[^a-z]/g, '')}`);
      t.teardown(() => topo.destroy());
      const pod = await topo.addNamespace('pod');
      const peer = await topo.addNamespace('peer');
      await topo.addVeth({ ns: pod, ifname: 'eth0', addrs: ['10.201.0.2/24', 'fd00:201::2/64'] }, { ns: peer, ifname: 'eth0', addrs: ['10.201.0.1/24', 'fd00:201::1/64'] });
      const podSrv = topo.spawn(pod, 'pod-server', process.execPath, [SERVER, '15001', '15006', '15008', '15021']);
      const peerSrv = topo.spawn(peer, 'peer-server', process.execPath, [SERVER, '80', '7000']);
      t.regex(await podSrv.waitFor(/^LISTENING/), /LISTENING addon/);
      await peerSrv.waitFor(/^LISTENING/);

      const install = await runOk(process.execPath, [MAIN, 'redirect', 'install', '--redirect-netns', pod], { env: { PATH: process.env['PATH'], REDIRECT_IPTABLES: backend.name } });
      t.regex(install, /IPv4 and IPv6/);

      // Outbound from the pod (nat OUTPUT).
      t.like(await ask(topo, pod, 'TCP:10.201.0.1:80'), { listener: 15001, dst: '10.201.0.1:80', source: 'so_original_dst' });
      t.like(await ask(topo, pod, 'TCP6:[fd00:201::1]:80'), { listener: 15001, dst: '[fd00:201::1]:80', source: 'so_original_dst' });
      const marked = await topo.exec(pod, process.execPath, [MARKED_CLIENT, '10.201.0.1', '80', String(0x539)]);
      t.like(JSON.parse(marked.stdout || '{}') as Answer, { listener: 80 }, `SO_MARK 0x539 is never captured: ${marked.stderr}`);
      t.like(await ask(topo, pod, 'TCP:127.0.0.1:15021'), { listener: 15021 }, 'loopback is never captured');

      // Inbound to the pod (nat PREROUTING).
      t.like(await ask(topo, peer, 'TCP:10.201.0.2:7000'), { listener: 15006, dst: '10.201.0.2:7000', source: 'so_original_dst' });
      t.like(await ask(topo, peer, 'TCP6:[fd00:201::2]:7000'), { listener: 15006, dst: '[fd00:201::2]:7000' });
      t.like(await ask(topo, peer, 'TCP:10.201.0.2:15008'), { listener: 15008, dst: '10.201.0.2:15008' }, 'HBONE is reached directly');
      t.like(await ask(topo, peer, 'TCP:10.201.0.2:15021'), { listener: 15021 }, 'readiness port is never captured');

      await runOk(process.execPath, [MAIN, 'redirect', 'remove', '--redirect-netns', pod], { env: { PATH: process.env['PATH'], REDIRECT_IPTABLES: backend.name } });
      t.like(await ask(topo, pod, 'TCP:10.201.0.1:80'), { listener: 80 }, 'after remove nothing is captured');
      const refused = await ask(topo, peer, 'TCP:10.201.0.2:7000');
      t.is(refused.listener, undefined);
      t.regex(refused.raw.stderr, /Connection refused/);
    });
  }
}
