import test from 'ava';
import { waitUntil, type TestNode } from '../../helpers/node-harness';
import { exchange } from '../../helpers/echo-server';
import { startTwoNodes } from '../../helpers/two-nodes';
import { socksConnect, SocksReplyError } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';

/**
 * Drain order (issue 11 defect 3): shutdown stops accepting AND sends GOAWAY on every HBONE
 * server session at once. Waiting for the listeners' close callback first (it waits for every
 * accepted socket, idle pooled HBONE connections included) made a node with any pooled peer
 * take the whole termination deadline, while peers kept opening streams on it.
 */

const DEADLINE_MS = 5000;

async function twoNodes(t: import('ava').ExecutionContext) {
  return startTwoNodes(t, { b: { CONNECTION_TERMINATION_DEADLINE: `${DEADLINE_MS}ms` } });
}

async function pooledSessions(n: TestNode): Promise<number> {
  return sumSamples(await n.metrics(), 'ztunnel_ts_hbone_pool_sessions');
}

test('a node whose only HBONE connections are idle pooled peers stops in well under the deadline', async (t) => {
  const { ip, a, b } = await twoNodes(t);
  const s = await socksConnect(a.listener('socks5'), { host: ip(20), port: 8080 }, ip(10));
  t.is((await exchange(s, Buffer.from('warm the pool'))).toString(), 'warm the pool');
  await waitUntil(async () => (await a.liveConnections()) === 0 && (await b.liveConnections()) === 0, 5000, () => 'connection recorded on both nodes');
  t.is(await pooledSessions(a), 1, 'node-a keeps one idle pooled connection to node-b');

  const t0 = Date.now();
  await b.close();
  const took = Date.now() - t0;
  t.log(`node-b stopped in ${took} ms with one idle pooled peer (deadline ${DEADLINE_MS} ms)`);
  t.true(took < 1500, `stop took ${took} ms; the idle pooled connection held the drain`);
  t.is(b.logs.find((l) => l['msg'] === 'drain deadline reached; force-closing remaining connections').length, 0);
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'pooled HBONE connection received GOAWAY').length === 1, 2000, () => 'node-a saw the GOAWAY');
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'HBONE connection left the pool').length === 1, 2000, () => 'node-a evicted the session');
});

test('drain: GOAWAY reaches peers at once, before the listeners finish closing; in-flight streams finish; the node stops when they do', async (t) => {
  const { ip, a, b } = await twoNodes(t);
  const socks = a.listener('socks5');
  const inflight = await socksConnect(socks, { host: ip(20), port: 8080 }, ip(10));
  inflight.write('before drain;');
  await new Promise<void>((r) => inflight.once('data', () => r()));
  t.is(await pooledSessions(a), 1);

  const t0 = Date.now();
  let stopped = 0;
  const stopping = b.close().then(() => (stopped = Date.now() - t0));
  // The peer hears GOAWAY while node-b is still draining (its listeners' close has not
  // completed: an accepted connection, the in-flight one, is still open).
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'pooled HBONE connection received GOAWAY').length === 1, 1000, () => 'GOAWAY within 1 s of the drain start');
  const goawayAfter = Date.now() - t0;
  t.is(stopped, 0, 'node-b is still draining its in-flight stream');
  await waitUntil(() => a.logs.find((l) => l['msg'] === 'HBONE connection left the pool' && l['why'] === 'goaway').length === 1, 1000, () => 'node-a evicted the draining session');

  // A new connection does not ride the draining session: it needs a new HBONE connection,
  // which node-b no longer accepts.
  const refused = await socksConnect(socks, { host: ip(20), port: 8080 }, ip(10)).then(
    (s) => {
      s.destroy();
      return null;
    },
    (e: unknown) => e,
  );
  t.true(refused instanceof SocksReplyError, `a new connection was served by the draining node: ${String(refused)}`);

  // The in-flight stream keeps working, then finishes; node-b stops right after.
  const rest = await exchange(inflight, Buffer.from('during drain'));
  t.is(rest.toString(), 'during drain');
  await stopping;
  t.log(`GOAWAY at the peer after ${goawayAfter} ms; node-b stopped ${stopped} ms after the drain started (deadline ${DEADLINE_MS} ms)`);
  t.true(stopped < DEADLINE_MS - 2000, `node-b waited ${stopped} ms`);
  const m = await b.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reason: 'DRAINED' }), 0, 'nothing was force-closed');
  t.is(b.access('connection complete').filter((l) => l['reason'] === undefined || l['reason'] === null).length, 1, 'the in-flight connection completed cleanly on node-b');
});
