import test from 'ava';
import { constants } from 'node:http2';
import { FRAME, arena, connectBlock, h2frame, measure, settingsPayload, u32, type Arena } from './raw-h2';

/**
 * HTTP/2 control-frame floods against the inbound HBONE server, with
 * real TLS 1.3 and hand-built frames. Each test also proves service continues: a
 * well-behaved client on another connection completes an echo round trip mid-attack.
 * Numbers (time to close, heap+Buffer delta after GC, peak delta) are logged; timing is
 * only asserted as generous upper bounds. Client and server share this process, so the
 * memory numbers include the attacker's own buffers.
 */

const FLOOD = 10_000;
const SETTINGS = h2frame(FRAME.SETTINGS, 0, 0, settingsPayload([[1, 4096]]));
const PING = h2frame(FRAME.PING, 0, 0, Buffer.alloc(8, 7));

function flood(one: Buffer): Buffer {
  return Buffer.concat(Array.from({ length: FLOOD }, () => one));
}

function abuseLogs(a: Arena): number {
  return a.side.logs.find((l) => l['reason'] === 'STREAM_LIMIT').length;
}

test.serial('SETTINGS flood (10,000 frames, ACKs read) → GOAWAY and close within 5 s; memory bounded; others served', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  const m = await measure(async () => {
    c.send(flood(SETTINGS));
    const served = await a.served('settings');
    return { served, ended: await c.until(() => c.closed, 5000) };
  });
  t.log(`SETTINGS flood (reading): GOAWAY ${c.goaway} after ${c.goawayAt ? c.goawayAt - (c.closedAt - m.ms) : -1} ms, closed in ≤${m.ms} ms; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
  t.true(m.result.ended, 'session closed');
  t.not(c.goaway, null, 'GOAWAY sent');
  t.true(m.result.served, 'a well-behaved client on another connection is served during the flood');
  t.true(m.heapDeltaKiB < 8 * 1024, 'no lasting memory growth');
  t.is(a.calls(), 1, 'only the good client reached the handler');
  t.true(await c.until(() => a.side.server.stats().connections === 1, 2000), 'only the good connection is left');
});

test.serial('PING flood (10,000 PINGs, ACKs read) → session dropped within 5 s; others served', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  const m = await measure(async () => {
    c.send(flood(PING));
    const served = await a.served('ping');
    return { served, ended: await c.until(() => c.closed, 5000) };
  });
  t.log(`PING flood (reading): ${c.pingAcks} ACKs then GOAWAY ${c.goaway}, closed in ≤${m.ms} ms; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
  t.true(m.result.ended);
  t.true(c.pingAcks < FLOOD, 'the server stopped answering before the flood ended');
  t.true(m.result.served);
  t.true(m.heapDeltaKiB < 8 * 1024);
  t.true(await c.until(() => a.side.server.stats().connections === 1, 2000));
});

test.serial('our PING/SETTINGS counter drops a peer that paces its control frames under nghttp2\'s queue limit', async (t) => {
  const a = await arena(t, { server: { maxControlFrames: 50 } });
  const c = await a.raw();
  const t0 = Date.now();
  // 10 PINGs per burst, each burst's ACKs read before the next: nghttp2's flood check
  // (1000 queued ACKs) never fires; only the per-session counter can stop this.
  for (let i = 0; i < 20 && !c.closed && c.goaway === null; i++) {
    const acks = c.pingAcks;
    c.send(Buffer.concat(Array.from({ length: 10 }, () => PING)));
    await c.until(() => c.pingAcks >= acks + 10 || c.closed || c.goaway !== null, 2000);
  }
  t.true(await c.until(() => c.closed, 3000), 'session closed');
  t.log(`paced PINGs: ${c.pingAcks} answered, then GOAWAY ${c.goaway} after ${Date.now() - t0} ms`);
  t.is(c.goaway, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  t.true(c.pingAcks <= 60);
  t.is(abuseLogs(a), 1, 'one STREAM_LIMIT warning');
  t.true(await a.served('paced'));
});

for (const [name, one] of [['SETTINGS', SETTINGS], ['PING', PING]] as const) {
  test.serial(`${name} flood from a client that never reads ACKs: session dropped, its TCP connection closed, memory bounded`, async (t) => {
    const keepalive = { interval: 200, timeout: 400 };
    const a = await arena(t, { server: { keepalive } });
    const c = await a.raw();
    c.sock.pause(); // never read: ACKs pile up in the kernel buffers, then in the server
    const m = await measure(async () => {
      c.send(flood(one));
      const served = await a.served(`noread-${name}`);
      // A paused client cannot see the close, so watch the server: only the good
      // (pooled) connection may remain.
      return { served, dropped: await c.until(() => a.side.server.stats().connections === 1, 5000) };
    });
    const why = a.side.logs.find((l) => l['reason'] === 'STREAM_LIMIT' || String(l['msg']).includes('no PING ACK') || String(l['msg']).includes('session error')).map((l) => String(l['err'] ?? l['msg']));
    t.log(`${name} flood, no reading: server dropped it after ≤${m.ms} ms (${why.join('; ')}); CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
    t.true(m.result.dropped, 'dropped within interval + timeout (+ slack)');
    c.sock.resume();
    t.true(await c.until(() => c.closed, 3000), 'the TCP connection itself is gone, not only the session');
    t.true(m.result.served);
    t.true(m.peakDeltaKiB < 32 * 1024, 'peak memory bounded while stalled');
    t.true(m.heapDeltaKiB < 8 * 1024);
    t.true(why.length >= 1, 'the drop is logged');
  });
}

test.serial('WINDOW_UPDATE flood (10,000 legal increments) costs little and keeps service; an overflowing one → GOAWAY', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  const m = await measure(async () => {
    c.send(flood(h2frame(FRAME.WINDOW_UPDATE, 0, 0, u32(1))));
    const served = await a.served('wu');
    // Still usable afterwards: a PING round trip on the flooded session.
    c.send(PING);
    return { served, alive: await c.until(() => c.pingAcks === 1, 3000) };
  });
  t.log(`WINDOW_UPDATE flood (+1 ×10,000): session alive=${m.result.alive} after ${m.ms} ms; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
  t.true(m.result.served);
  t.true(m.result.alive, 'legal increments are just bookkeeping (no ACK, no allocation)');
  t.true(m.heapDeltaKiB < 8 * 1024);
  // 2^31-1 on top of the current window overflows it: a connection error (RFC 9113 §6.9.1).
  c.send(h2frame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)));
  t.true(await c.endedWithin(3000));
  t.log(`overflowing WINDOW_UPDATE → GOAWAY ${c.goaway}`);
  t.true(c.goaway === constants.NGHTTP2_FLOW_CONTROL_ERROR || c.goaway === constants.NGHTTP2_INTERNAL_ERROR, `GOAWAY ${c.goaway}`);
});

test.serial('CONTINUATION flood (HEADERS without END_HEADERS + 10,000 CONTINUATIONs, CVE-2024-27316) → GOAWAY within 5 s, handler never called', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  const filler = h2frame(FRAME.CONTINUATION, 0, 1, Buffer.alloc(16, 0x40));
  const m = await measure(async () => {
    c.send(h2frame(FRAME.HEADERS, 0, 1, connectBlock(`${a.app.ip}:${a.app.port}`)));
    for (let i = 0; i < 10 && !c.closed; i++) {
      c.send(Buffer.concat(Array.from({ length: 1000 }, () => filler)));
      await new Promise((r) => setTimeout(r, 5));
    }
    const ended = await c.endedWithin(5000);
    return { ended, served: await a.served('cont') };
  });
  t.log(`CONTINUATION flood: GOAWAY ${c.goaway} within ${m.ms} ms; CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
  t.true(m.result.ended);
  t.not(c.goaway, null);
  t.true(m.result.served);
  t.is(a.calls(), 1, 'only the good client reached the handler');
  t.true(m.heapDeltaKiB < 8 * 1024);
});
