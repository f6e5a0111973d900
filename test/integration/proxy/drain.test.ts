import test from 'ava';
import { waitUntil } from '../../helpers/node-harness';
import { socksConnect } from '../../helpers/socks-client';
import { sumSamples } from '../../helpers/prom-text';
import { endOf, startTwoNodes } from '../../helpers/two-nodes';

test('drain on close: listeners stop, an in-flight connection gets the deadline, then is reset and recorded DRAINED', async (t) => {
  const { ip, a, b } = await startTwoNodes(t, { a: { CONNECTION_TERMINATION_DEADLINE: '600ms' }, b: { CONNECTION_TERMINATION_DEADLINE: '600ms' } });
  const socks = a.listener('socks5');
  const s = await socksConnect(socks, { host: ip(20), port: 8080 }, ip(10));
  s.write('in flight');
  await new Promise<void>((r) => s.once('data', () => r()));
  const endP = endOf(s, 10_000);

  const t0 = Date.now();
  await a.close();
  const took = Date.now() - t0;
  t.is(await endP, 'ECONNRESET', 'a connection cut at the drain deadline is reset, never a clean EOF');
  t.true(took >= 550, `close waited for the deadline (${took}ms)`);
  t.true(took < 5000, `close did not hang (${took}ms)`);
  const line = a.access('connection complete').find((l) => l['reason'] === 'DRAINED');
  t.truthy(line, 'the in-flight connection was recorded DRAINED');
  t.like(line, { level: 'warn', direction: 'outbound', bytes_sent: 9, bytes_recv: 9 });
  const m = await a.metrics();
  t.is(sumSamples(m, 'ztunnel_ts_connection_failures_total', { reason: 'DRAINED' }), 1);
  t.is(sumSamples(m, 'istio_tcp_connections_closed_total'), 1);
  t.is(a.recordedTwice(), 0);
  t.truthy(a.logs.find((l) => l['msg'] === 'drain deadline: force-closed live connections').length);

  // Listeners are gone: a new SOCKS connection is refused.
  const { connect } = await import('node:net');
  const c = connect({ host: socks.ip, port: socks.port });
  const err = await new Promise<NodeJS.ErrnoException | null>((r) => {
    c.once('error', (e) => r(e));
    c.once('connect', () => r(null));
  });
  c.destroy();
  t.is(err?.code, 'ECONNREFUSED');
  // The peer side saw the HBONE stream end; it records once, without leaking a live entry.
  await waitUntil(async () => (await b.liveConnections()) === 0, 5000, () => 'node-b recorded the stream');
});
