import test from 'ava';
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import { checkConnectHeaders } from '../../../src/transport/hbone/headers';
import { rapidReset, rawRequest } from './raw-h2';
import { eventually, startHbone, type HboneSide } from './fixture';

/** Sends one request with Node's client (it allows these malformed-for-HBONE forms). */
async function nodeRequest(side: HboneSide, headers: http2.OutgoingHttpHeaders): Promise<number | string> {
  const sock = tls.connect({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  await new Promise((r) => sock.once('secureConnect', r));
  const session = http2.connect(`https://${side.hboneAddr.ip}:${side.hboneAddr.port}`, { createConnection: () => sock });
  session.on('error', () => undefined);
  try {
    const st = session.request(headers, { endStream: false });
    st.on('error', () => undefined);
    return await new Promise<number | string>((resolve) => {
      st.once('response', (h) => resolve(Number(h[':status'])));
      st.once('close', () => resolve(`rst:${st.rstCode}`));
    });
  } finally {
    session.destroy();
  }
}

async function sideWithCounter(t: Parameters<typeof startHbone>[0]): Promise<{ side: HboneSide; calls: () => number }> {
  let n = 0;
  const side = await startHbone(t, { onConnect: (req) => (n++, req.reject(503, 'test')) });
  return { side, calls: () => n };
}

const cases: [string, http2.OutgoingHttpHeaders, number][] = [
  ['hostname authority', { ':method': 'CONNECT', ':authority': 'example.com:80' }, 400],
  ['port 0', { ':method': 'CONNECT', ':authority': '127.0.0.1:0' }, 400],
  ['port 70000', { ':method': 'CONNECT', ':authority': '127.0.0.1:70000' }, 400],
  ['no port', { ':method': 'CONNECT', ':authority': '127.0.0.1' }, 400],
  ['unbracketed IPv6', { ':method': 'CONNECT', ':authority': '::1:80' }, 400],
  ['GET', { ':method': 'GET', ':path': '/', ':authority': '127.0.0.1:80' }, 405],
  ['POST', { ':method': 'POST', ':path': '/x', ':authority': '127.0.0.1:80' }, 405],
];

for (const [name, headers, status] of cases) {
  test(`malformed CONNECT (${name}) → ${status}, handler never called`, async (t) => {
    const { side, calls } = await sideWithCounter(t);
    t.is(await nodeRequest(side, headers), status);
    t.is(calls(), 0);
    await eventually(() => side.logs.find((l) => l['reason'] === 'BAD_REQUEST').length === 1, 2000, 'BAD_REQUEST log');
  });
}

const rawCases: [string, [string, string][]][] = [
  ['missing :authority', [[':method', 'CONNECT']]],
  [':path present', [[':method', 'CONNECT'], [':authority', '127.0.0.1:80'], [':path', '/']]],
  [':scheme present', [[':method', 'CONNECT'], [':authority', '127.0.0.1:80'], [':scheme', 'https']]],
  ['extended CONNECT :protocol', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/'], [':authority', '127.0.0.1:80']]],
];

for (const [name, headers] of rawCases) {
  test(`malformed CONNECT (${name}) is refused by nghttp2 with RST_STREAM PROTOCOL_ERROR, handler never called`, async (t) => {
    const { side, calls } = await sideWithCounter(t);
    const ans = await rawRequest({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, checkServerIdentity: () => undefined }, headers);
    // nghttp2 refuses these (RFC 9113 §8.5) before any 'stream' event reaches our code.
    t.deepEqual(ans, { kind: 'rst', code: http2.constants.NGHTTP2_PROTOCOL_ERROR });
    t.is(calls(), 0);
  });
}

test('a well-formed CONNECT reaches the handler (control for the raw client)', async (t) => {
  const { side, calls } = await sideWithCounter(t);
  const ans = await rawRequest({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, checkServerIdentity: () => undefined }, [
    [':method', 'CONNECT'],
    [':authority', '127.0.0.1:80'],
  ]);
  t.is(calls(), 1);
  t.deepEqual(ans.kind, 'headers');
});

test('checkConnectHeaders: IPv6 authority in brackets is accepted', (t) => {
  const r = checkConnectHeaders({ ':method': 'CONNECT', ':authority': '[fd00::1]:8080' });
  t.true(r.ok);
  if (r.ok) t.deepEqual(r.authority, { ip: 'fd00::1', port: 8080, family: 6 });
});

test('rapid reset flood (CVE-2023-44487 pattern) gets the session closed, not served forever', async (t) => {
  let calls = 0;
  const side = await startHbone(t, { onConnect: () => calls++ });
  const r = await rapidReset({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, checkServerIdentity: () => undefined }, 5000);
  t.log(`server answer: GOAWAY code ${String(r.goaway)}, connection ${r.state}, handler reached ${calls} times for 5000 streams`);
  t.is(r.state, 'closed', 'the server closes the abusive connection');
  t.true(calls < 5000, 'not every reset stream reached the handler');
  await eventually(() => side.logs.find((l) => l['reason'] === 'STREAM_LIMIT').length === 1 || side.server.stats().connections === 0, 2000, 'session dropped');
  t.is(side.server.stats().connections, 0);
});
