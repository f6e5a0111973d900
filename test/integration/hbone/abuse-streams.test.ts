import test from 'ava';
import { constants } from 'node:http2';
import { FLAG, FRAME, arena, connectBlock, fillWindows, h2frame, hpackIndexed, hpackLiteral, measure, u32 } from './raw-h2';

/**
 * Stream-level abuse against the inbound HBONE server: more
 * streams than advertised, oversized headers and HPACK bombs, and DATA parked on streams
 * whose CONNECT is still being dialled. The handler holds abusive requests unanswered
 * (an upstream dial in progress) and answers the well-behaved client's at once.
 */

/** Requests from the raw client (no traceparent) are held; the pool's good client is served. */
const holdRaw = { hold: (req: { headers: Readonly<Record<string, unknown>> }) => !req.headers['traceparent'] };

test.serial('250 streams at once (> 200 advertised, after SETTINGS ACK): at most 200 reach the handler; the violator is cut off; others served', async (t) => {
  const a = await arena(t, holdRaw);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0 && c.settingsAcks > 0, 3000));
  await new Promise((r) => setTimeout(r, 50)); // our SETTINGS ACK reaches the server first
  const block = connectBlock(`${a.app.ip}:${a.app.port}`);
  const m = await measure(async () => {
    c.send(Buffer.concat(Array.from({ length: 250 }, (_, i) => h2frame(FRAME.HEADERS, FLAG.END_HEADERS, 2 * i + 1, block))));
    await c.until(() => c.closed || [...c.rst.values()].filter((x) => x === constants.NGHTTP2_REFUSED_STREAM).length >= 50, 3000);
    const rawCalls = a.calls();
    return { rawCalls, served: await a.served('streams') };
  });
  const refused = [...c.rst.values()].filter((x) => x === constants.NGHTTP2_REFUSED_STREAM).length;
  t.log(`250 streams after ACK: ${m.result.rawCalls} reached the handler (max ${a.maxHeld()} at once), ${refused} REFUSED_STREAM, RST codes {${[...new Set(c.rst.values())].join(',')}}, GOAWAY ${c.goaway}, closed ${c.closed}; ${m.ms} ms, CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB`);
  t.true(m.result.rawCalls <= 200);
  t.true(a.maxHeld() <= 200);
  // RFC 9113 §5.1.2: PROTOCOL_ERROR (connection) or REFUSED_STREAM are both allowed here.
  t.true(c.closed || refused === 50, 'excess streams refused or the session torn down');
  t.true(m.result.served, 'a well-behaved client on another connection is served');
  t.true(m.heapDeltaKiB < 8 * 1024);
});

test.serial('400 streams from a client that never ACKs our SETTINGS: the excess gets REFUSED_STREAM, then the session is dropped', async (t) => {
  const a = await arena(t, holdRaw);
  const c = await a.raw({ ackSettings: false });
  const block = connectBlock(`${a.app.ip}:${a.app.port}`);
  c.send(Buffer.concat(Array.from({ length: 400 }, (_, i) => h2frame(FRAME.HEADERS, FLAG.END_HEADERS, 2 * i + 1, block))));
  t.true(await c.until(() => c.closed, 5000), 'session dropped');
  const refused = [...c.rst.values()].filter((x) => x === constants.NGHTTP2_REFUSED_STREAM).length;
  t.log(`400 streams, SETTINGS never ACKed: handler ${a.calls()} (max ${a.maxHeld()} at once), ${refused} REFUSED_STREAM, then closed`);
  t.true(a.calls() <= 200);
  t.true(a.maxHeld() <= 200);
  t.true(refused >= 1);
  t.true(await a.served('noack'));
});

test.serial('a single 70 KiB header field (> the 64 KiB header list limit): session ended, handler never called', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  c.headers(1, Buffer.concat([connectBlock(`${a.app.ip}:${a.app.port}`), hpackLiteral('x-big', Buffer.alloc(70 * 1024, 0x61))]));
  t.true(await c.until(() => c.rst.has(1) || c.goaway !== null || c.closed, 3000));
  t.log(`70 KiB field: RST ${c.rst.get(1)}, GOAWAY ${c.goaway}`);
  t.false(c.status.has(1));
  t.is(a.calls(), 0);
  t.true(await a.served('big'));
});

test.serial('header list of 80 KiB in two 40 KiB fields → stream refused (RST), handler never called, session usable', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  const big = Buffer.alloc(40 * 1024, 0x61);
  c.headers(1, Buffer.concat([connectBlock(`${a.app.ip}:${a.app.port}`), hpackLiteral('x-a', big), hpackLiteral('x-b', big)]));
  t.true(await c.until(() => c.rst.has(1) || c.goaway !== null || c.closed, 3000));
  t.log(`80 KiB list: RST ${c.rst.get(1)}, GOAWAY ${c.goaway}`);
  t.false(c.status.has(1));
  t.is(a.calls(), 0);
  if (c.goaway === null) {
    c.headers(3, connectBlock(`${a.app.ip}:${a.app.port}`));
    t.true(await c.until(() => c.status.get(3) === 200, 3000), 'the next well-formed CONNECT on the same session works');
  }
  t.true(await a.served('list'));
});

test.serial('HPACK bomb: one 4000-byte table entry referenced 500× per request (2 MB decoded) × 200 requests → every stream refused, handler never called', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  const authority = `${a.app.ip}:${a.app.port}`;
  const refs = Buffer.concat(Array.from({ length: 500 }, () => hpackIndexed(62)));
  const m = await measure(async () => {
    c.headers(1, Buffer.concat([connectBlock(authority), hpackLiteral('x-bomb', Buffer.alloc(4000, 0x62), true), refs]));
    for (let i = 1; i < 200; i++) c.headers(2 * i + 1, Buffer.concat([connectBlock(authority), refs]));
    await c.until(() => c.rst.size === 200 || c.closed || c.goaway !== null, 5000);
    return a.served('bomb');
  });
  t.log(`HPACK bomb ×200: ${c.rst.size} RST (codes {${[...new Set(c.rst.values())].join(',')}}), ${c.status.size} answered, GOAWAY ${c.goaway}; ${m.ms} ms, CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`);
  t.true(c.rst.size === 200 || c.closed, 'every bomb refused (or the session dropped)');
  t.is(c.status.size, 0);
  t.is(a.calls(), 1, 'only the good client reached the handler');
  t.true(m.result);
  t.true(m.heapDeltaKiB < 8 * 1024);
});

test.serial('1000 small header pairs (> 128 pairs) → RST_STREAM ENHANCE_YOUR_CALM, handler never called', async (t) => {
  const a = await arena(t);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  c.headers(1, Buffer.concat([connectBlock(`${a.app.ip}:${a.app.port}`), ...Array.from({ length: 1000 }, (_, i) => hpackLiteral(`x-h${i}`, 'v'))]));
  t.true(await c.until(() => c.rst.has(1) || c.goaway !== null || c.closed, 3000));
  t.log(`1000 pairs: RST ${c.rst.get(1)}, GOAWAY ${c.goaway}`);
  t.is(c.rst.get(1), constants.NGHTTP2_ENHANCE_YOUR_CALM);
  t.is(a.calls(), 0);
  t.true(await a.served('pairs'));
});

test.serial('huge DATA on 16 streams still being dialled: parked bytes capped at the connection window (16 MiB), excess streams reset', async (t) => {
  const a = await arena(t, holdRaw);
  const c = await a.raw();
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  const streams = Array.from({ length: 16 }, (_, i) => 2 * i + 1);
  for (const s of streams) c.headers(s, connectBlock(`${a.app.ip}:${a.app.port}`));
  t.true(await c.until(() => a.calls() === 16, 3000));
  const m = await measure(async () => {
    const sent = await fillWindows(c, streams);
    const dump = a.side.server.dump() as { connections: { preAcceptBytes: number; unanswered: number }[] };
    return { sent: [...sent.values()].reduce((x, y) => x + y, 0), parked: dump.connections[0]?.preAcceptBytes ?? -1 };
  });
  const reset = [...c.rst.values()].filter((x) => x === constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
  t.log(
    `pre-accept DATA: client was granted and sent ${(m.result.sent / 1048576).toFixed(1)} MiB over 16 streams (4 MiB stream windows); ` +
      `server parked ${(m.result.parked / 1048576).toFixed(1)} MiB, reset ${reset} streams (ENHANCE_YOUR_CALM); ${m.ms} ms, CPU ${m.cpuMs} ms, heap Δ ${m.heapDeltaKiB} KiB, peak Δ ${m.peakDeltaKiB} KiB`,
  );
  t.true(m.result.parked >= 0 && m.result.parked <= 16 * 1024 * 1024, 'parked bytes within the budget');
  t.true(reset >= 1, 'streams past the budget were reset');
  t.true(m.heapDeltaKiB < 24 * 1024, 'memory ≈ the budget, not 16 × 4 MiB');
  t.is(a.side.logs.find((l) => l['reason'] === 'STREAM_LIMIT').length, 1, 'one warning per connection');
  t.false(c.closed, 'only the offending streams were reset');
  t.true(await a.served('data'));
  // The survivors are still good CONNECTs: answered once their "dial" completes.
  a.release();
  const survivors = streams.filter((s) => !c.rst.has(s));
  t.true(await c.until(() => survivors.every((s) => c.status.get(s) === 200), 3000), 'held streams answered after release');
});

test.serial('DATA sent before the answer, within the budget, is delivered intact after accept (control)', async (t) => {
  const a = await arena(t, holdRaw);
  const c = await a.raw({ settings: [[4, 1 << 24]] });
  t.true(await c.until(() => c.serverSettings > 0, 3000));
  c.send(h2frame(FRAME.WINDOW_UPDATE, 0, 0, u32(1 << 24)));
  c.headers(1, connectBlock(`${a.app.ip}:${a.app.port}`));
  t.true(await c.until(() => a.calls() === 1, 3000));
  const size = 256 * 1024;
  for (let off = 0; off < size; off += 16_384) c.send(h2frame(FRAME.DATA, off + 16_384 >= size ? FLAG.END_STREAM : 0, 1, Buffer.alloc(16_384, 0x63)));
  await new Promise((r) => setTimeout(r, 200));
  const dump = a.side.server.dump() as { connections: { preAcceptBytes: number }[] };
  t.is(dump.connections[0]?.preAcceptBytes, size, 'counted while unanswered');
  a.release();
  t.true(await c.until(() => c.dataBytes.get(1) === size, 5000), `echoed ${c.dataBytes.get(1)} of ${size} bytes`);
  t.false(c.rst.has(1));
  t.is((a.side.server.dump() as { connections: { preAcceptBytes: number }[] }).connections[0]?.preAcceptBytes, 0, 'released once answered');
});
