import test from 'ava';
import { constants } from 'node:http2';
import { formatSocketAddr } from '../../../src/util/socket-addr';
import { FRAME, arena, connectBlock, h2frame, measure, startFirehose, u32 } from './raw-h2';

/**
 * Slow or stalled HBONE clients: a zero receive window, a client
 * that stops reading altogether, a client that stops answering PINGs. Memory must stay
 * bounded by backpressure (the app-side writer is paused), and the configured idle or
 * keepalive handling must eventually free the connection, its socket and the app leg.
 */

test.serial('zero-window stall: the app writer is paused (bounded memory), and the idle timeout frees the stream', async (t) => {
  const a = await arena(t, { idleTimeout: 1500 });
  const { addr, state } = await startFirehose(t);
  // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may never send us a DATA byte.
  const c = await a.raw({ settings: [[4, 0]] });
  const m = await measure(async () => {
    c.headers(1, connectBlock(formatSocketAddr(addr)));
    await c.until(() => c.status.get(1) === 200, 3000);
    await c.until(() => state.backpressured, 3000);
    // Wait until the app's writes stop being accepted (buffers full), then watch it stay so.
    let last = -1;
    for (let i = 0; i < 30 && state.written !== last; i++) {
      last = state.written;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stalledAt = state.written;
    await new Promise((r) => setTimeout(r, 200));
    return { stalledAt, stillAt: state.written, freed: await c.until(() => c.rst.has(1) && state.closed, 5000) };
  });
  t.log(
    `zero window: app wrote ${(m.result.stalledAt / 1048576).toFixed(1)} MiB before backpressure held it (then ${m.result.stillAt - m.result.stalledAt} more bytes); ` +
      `${c.dataBytes.get(1) ?? 0} DATA bytes reached the client; freed (RST ${c.rst.get(1)}) after ≤${m.ms} ms; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`,
  );
  t.is(c.status.get(1), 200);
  t.true(state.backpressured, 'the app-side writer saw backpressure');
  t.is(m.result.stillAt, m.result.stalledAt, 'nothing more is accepted from the app while the window stays 0');
  t.true(m.result.stalledAt < 64 * 1024 * 1024, 'bounded by socket buffers, not by what the app has to send');
  t.is(c.dataBytes.get(1) ?? 0, 0, 'flow control respected');
  t.true(m.peakDeltaKiB < 64 * 1024);
  t.true(m.result.freed, 'idle timeout reset the stream and closed the app connection');
  t.true(await a.served('zero-window'), 'a well-behaved client is served');
  t.false(c.closed, 'only the stream was freed; the (PING-answering) session lives on');
});

test.serial('a client that stops reading entirely: keepalive drops the session, the socket is reaped and the app leg closed', async (t) => {
  const keepalive = { interval: 200, timeout: 400 };
  const a = await arena(t, { server: { keepalive } });
  const { addr, state } = await startFirehose(t);
  // Huge windows: the server may send as much as it likes, so its socket buffers fill up.
  const c = await a.raw({ settings: [[4, 0x7fffffff]] });
  const m = await measure(async () => {
    c.send(h2frame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff - 65_535)));
    c.headers(1, connectBlock(formatSocketAddr(addr)));
    await c.until(() => c.status.get(1) === 200, 3000);
    c.sock.pause(); // from now on nothing is read: kernel buffers fill, then the server's
    const t0 = Date.now();
    const dropped = await c.until(() => a.side.server.stats().connections === 0, 5000);
    const droppedMs = Date.now() - t0;
    const appClosed = await c.until(() => state.closed, 3000);
    return { dropped, droppedMs, appClosed, written: state.written };
  });
  t.log(
    `non-reading client: dropped ${m.result.droppedMs} ms after it stopped reading (keepalive ${keepalive.interval}+${keepalive.timeout} ms, grace 1000 ms); ` +
      `app wrote ${(m.result.written / 1048576).toFixed(1)} MiB in total; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`,
  );
  t.true(m.result.dropped, 'session and connection gone within interval + timeout + grace (+ slack)');
  t.true(m.result.appClosed, 'the app-side connection was closed');
  t.true(state.backpressured);
  t.true(m.result.written < 256 * 1024 * 1024, 'the app was held back, not drained into memory');
  t.true(m.heapDeltaKiB < 16 * 1024);
  c.sock.resume();
  t.true(await c.until(() => c.closed, 3000), 'the TCP connection is closed, not half-open');
  t.true(a.side.logs.find((l) => String(l['msg']).includes('no PING ACK')).length === 1);
  t.true(await a.served('noread'));
});

test.serial('server keepalive: a client that stops answering PINGs is dropped within interval + timeout', async (t) => {
  const keepalive = { interval: 200, timeout: 400 };
  const a = await arena(t, { server: { keepalive } });
  const c = await a.raw({ ackPings: false });
  const t0 = Date.now(); // the server's session starts after our handshake completes
  c.headers(1, connectBlock(`${a.app.ip}:${a.app.port}`));
  t.true(await c.until(() => c.status.get(1) === 200, 3000));
  t.true(await c.until(() => c.closed, 5000), 'dropped');
  const ms = Date.now() - t0;
  t.log(`unanswered PINGs: ${c.pingsFromServer} PING(s) received, GOAWAY ${c.goaway}, closed ${ms} ms after the handshake (interval ${keepalive.interval} + timeout ${keepalive.timeout})`);
  t.true(ms >= keepalive.interval + keepalive.timeout - 50, 'not before the timeout');
  t.true(ms < 3000, 'within interval + timeout (+ generous slack)');
  t.is(c.pingsFromServer, 1, 'one outstanding PING at a time');
  t.is(c.goaway, constants.NGHTTP2_NO_ERROR);
  t.is(a.side.logs.find((l) => String(l['msg']).includes('no PING ACK')).length, 1);
  t.true(await a.served('keepalive'));
});

test.serial('server keepalive: a client that answers PINGs stays connected (control)', async (t) => {
  const a = await arena(t, { server: { keepalive: { interval: 100, timeout: 300 } } });
  const c = await a.raw();
  c.headers(1, connectBlock(`${a.app.ip}:${a.app.port}`));
  t.true(await c.until(() => c.status.get(1) === 200, 3000));
  await new Promise((r) => setTimeout(r, 800));
  t.false(c.closed);
  t.true(c.pingsFromServer >= 3, `${c.pingsFromServer} PINGs answered`);
});
