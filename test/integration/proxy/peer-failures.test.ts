import test, { type ExecutionContext } from 'ava';
import { connect } from 'node:net';
import { blackhole } from '../../helpers/blackhole';
import { waitUntil, type TestNode } from '../../helpers/node-harness';
import { sumSamples } from '../../helpers/prom-text';
import { endOf, startConfigOfTwo } from '../../helpers/two-nodes';

/**
 * A destination whose node proxy cannot be reached, through the real outbound path (a fixed
 * OUTBOUND_ADDR on the destination address, as captured traffic arrives): the client must
 * get ECONNRESET, never an EOF that reads as an empty but successful connection, within the
 * connect timeout, with the reason in the access log and metrics.
 */

const CONNECT_TIMEOUT_MS = 500;

async function outboundTo(t: ExecutionContext): Promise<{ ip: (h: number) => string; node: TestNode }> {
  // The server's node (node-b) is never started: its 15008 is whatever the test puts there.
  const { ip, mesh } = await startConfigOfTwo(t);
  const node = await mesh.startNode('node-a', { OUTBOUND_ADDR: `${ip(20)}:8080`, CONNECT_TIMEOUT: `${CONNECT_TIMEOUT_MS}ms` });
  return { ip, node };
}

async function clientEnd(ip: (h: number) => string): Promise<{ how: string; ms: number }> {
  const c = connect({ host: ip(20), port: 8080, localAddress: ip(10), allowHalfOpen: true });
  const t0 = Date.now();
  c.write('request that must not vanish silently');
  const how = await endOf(c, 10_000);
  return { how, ms: Date.now() - t0 };
}

test('black-holed peer (SYNs dropped on 15008): the client gets ECONNRESET within the connect timeout, NETWORK_POLICY logged', async (t) => {
  const { ip, node } = await outboundTo(t);
  await blackhole(t, ip(20), 15008);
  const { how, ms } = await clientEnd(ip);
  t.is(how, 'ECONNRESET');
  t.true(ms >= CONNECT_TIMEOUT_MS - 50 && ms < CONNECT_TIMEOUT_MS + 2500, `reset after ${ms} ms (connect timeout ${CONNECT_TIMEOUT_MS} ms)`);
  await waitUntil(() => node.access('connection complete').length === 1, 3000, () => 'access log line');
  t.like(node.access('connection complete')[0], { reason: 'NETWORK_POLICY', direction: 'outbound', 'dst.hbone_addr': `${ip(20)}:8080` });
  t.is(sumSamples(await node.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'NETWORK_POLICY' }), 1);
  t.log(`client reset after ${ms} ms`);
});

test('refused peer (nothing on 15008): the client gets ECONNRESET at once, PEER_UNREACHABLE logged', async (t) => {
  const { ip, node } = await outboundTo(t);
  const { how, ms } = await clientEnd(ip);
  t.is(how, 'ECONNRESET');
  t.true(ms < CONNECT_TIMEOUT_MS + 2500, `reset after ${ms} ms`);
  await waitUntil(() => node.access('connection complete').length === 1, 3000, () => 'access log line');
  t.like(node.access('connection complete')[0], { reason: 'PEER_UNREACHABLE', direction: 'outbound' });
  t.is(sumSamples(await node.metrics(), 'ztunnel_ts_connection_failures_total', { reason: 'PEER_UNREACHABLE' }), 1);
  t.log(`client reset after ${ms} ms`);
});
