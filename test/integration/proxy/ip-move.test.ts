import test from 'ava';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { TestMesh, waitUntil, type LocalConfigDoc } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { exchange } from '../../helpers/echo-server';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { httpRequest } from '../../helpers/http';
import { MeshCerts } from '../../helpers/mesh-certs';
import { HboneServer } from '../../../src/transport/hbone/server';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { WorkloadCertificate } from '../../../src/identity/types';
import { makeSocketAddr } from '../../../src/util/socket-addr';

/**
 * A pod IP that moves to another workload (new uid, new service account) in the state: node-a's
 * real outbound must stop using the session it pooled for the old workload and verify the NEW
 * identity on a fresh dial. The peer at that IP is a real HboneServer whose certificate (signed
 * by the mesh root) the test switches, standing for a stale peer and then the new pod's proxy.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const MOVED = ip(20);
const OLD = 'spiffe://cluster.local/ns/default/sa/old';
const NEW = 'spiffe://cluster.local/ns/default/sa/new';

const config = (owner: 'old' | 'new'): LocalConfigDoc => ({
  workloads: [
    { name: 'client', ips: [CLIENT], node: 'node-a' },
    { name: `pod-${owner}`, serviceAccount: owner, ips: [MOVED], node: 'node-r' },
  ],
});

interface PoolDump {
  keys: { key: string; sessions: { peerUid: string; peerIdentity: string }[] }[];
}

test('an IP that moves to another workload: the old pooled session is evicted, the next connection dials anew and verifies the new identity', async (t) => {
  const mesh = new TestMesh(['node-a']);
  t.teardown(() => mesh.close());
  mesh.writeConfig(config('old'));
  await mesh.startCa();
  const certs = await MeshCerts.load(join(mesh.dir, 'ca'));
  const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, CONNECT_TIMEOUT: '3s' });

  let presented: WorkloadCertificate = certs.workload(SpiffeId.parse(OLD), { uris: [OLD] });
  const seen: string[] = [];
  const peer = new HboneServer({
    logger: createLogger({ level: 'silent', format: 'json', destination: new LogCollector() }),
    resolveCert: async () => presented,
    onConnect: (req) => {
      seen.push(req.peerIdentity.toString());
      const s = req.accept();
      s.pipe(s);
    },
  });
  const listener = createServer((sock) => peer.handleSocket(sock, makeSocketAddr(MOVED, 15008)));
  await new Promise<void>((r) => listener.listen({ host: MOVED, port: 15008 }, r));
  t.teardown(async () => {
    peer.destroy();
    await new Promise((r) => listener.close(r));
  });
  const pools = async (): Promise<PoolDump> => {
    const r = await httpRequest(a.addrs.admin!, '/config_dump');
    return (JSON.parse(r.body) as { pools: PoolDump }).pools;
  };
  const uids = async (): Promise<string[]> => (await pools()).keys.flatMap((k) => k.sessions.map((s) => s.peerUid));

  // 1. The IP belongs to pod-old: one dial, one pooled session for its uid.
  const s1 = await socksConnect(a.listener('socks5'), { host: MOVED, port: 8080 }, CLIENT);
  t.is((await exchange(s1, Buffer.from('to old'))).toString(), 'to old');
  t.deepEqual(await uids(), ['cluster1//v1/Pod/default/pod-old']);
  t.is(peer.stats().connections, 1);
  const dialsBefore = sumSamples(await a.metrics(), 'ztunnel_ts_hbone_pool_dials_total');

  // 2. The IP moves to pod-new (another uid and service account): the old session leaves the
  //    pool and its connection is closed (GOAWAY, no stream open).
  mesh.writeConfig(config('new'));
  await waitUntil(() => a.app.state.findWorkloadByUid('cluster1//v1/Pod/default/pod-new') !== undefined, 5000, () => 'state moved');
  await waitUntil(() => peer.stats().connections === 0, 5000, () => `old session still open: ${JSON.stringify(peer.dump())}`);
  t.deepEqual(await uids(), []);

  // 3. A server still presenting the old identity is refused at the handshake (fresh dial).
  const err = await t.throwsAsync(socksConnect(a.listener('socks5'), { host: MOVED, port: 8080 }, CLIENT));
  t.is((err as SocksReplyError).code, 0x01);
  await waitUntil(() => a.access('connection complete').some((l) => l['reason'] === 'TLS_PEER_IDENTITY'), 5000, () => 'refusal logged');
  t.regex(String(a.access('connection complete').find((l) => l['reason'] === 'TLS_PEER_IDENTITY')?.['error']), new RegExp(`presented identity ${OLD}, expected one of \\[${NEW}\\]`));
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_connection_failures_total', { reporter: 'source', reason: 'TLS_PEER_IDENTITY' }), 1);

  // 4. The new pod's proxy presents the new identity: accepted, and pooled under the new uid.
  presented = certs.workload(SpiffeId.parse(NEW), { uris: [NEW] });
  const s2 = await socksConnect(a.listener('socks5'), { host: MOVED, port: 8080 }, CLIENT);
  t.is((await exchange(s2, Buffer.from('to new'))).toString(), 'to new');
  t.deepEqual(await uids(), ['cluster1//v1/Pod/default/pod-new']);
  t.is(sumSamples(await a.metrics(), 'ztunnel_ts_hbone_pool_dials_total'), dialsBefore + 2, 'the refused and the accepted connection each dialled');
  t.deepEqual(seen, ['spiffe://cluster.local/ns/default/sa/client', 'spiffe://cluster.local/ns/default/sa/client']);
  // The accepted connection to pod-new is recorded without a failure reason (the refused one has TLS_PEER_IDENTITY).
  const toNew = (): Record<string, unknown>[] => a.access('connection complete').filter((l) => l['dst.workload'] === 'pod-new' && l['reason'] === undefined);
  await waitUntil(() => toNew().length > 0, 5000, () => 'access line of the accepted connection to pod-new');
  t.is(toNew().length, 1);
});
