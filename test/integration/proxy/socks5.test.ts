import test from 'ava';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { readSocksRequest, buildSocksReply, SocksError, socksReplyFor } from '../../../src/proxy/socks5';

/** Resolves when the socket has seen the peer's FIN or is closed. */
function finished(s: Socket): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((r) => {
    s.once('end', () => r());
    s.once('close', () => r());
  });
}

/** Runs readSocksRequest on the server side of a real loopback connection fed `bytes`. */
async function serve(bytes: Buffer): Promise<{ result: Awaited<ReturnType<typeof readSocksRequest>> | SocksError; clientGot: Buffer; rest: Buffer }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [sock] = (await once(server, 'connection')) as [Socket];
  const clientChunks: Buffer[] = [];
  client.on('data', (c: Buffer) => clientChunks.push(c));
  client.write(bytes);
  let result: Awaited<ReturnType<typeof readSocksRequest>> | SocksError;
  try {
    result = await readSocksRequest(sock, 2000);
  } catch (err) {
    result = err as SocksError;
  }
  const rest: Buffer[] = [];
  sock.on('data', (c: Buffer) => rest.push(c));
  // Both sides end: everything either side wrote has arrived once both have seen the FIN
  // (no timing window, so a loaded machine cannot make the client miss the reply).
  const done = Promise.all([finished(client), finished(sock)]);
  client.end();
  sock.end();
  sock.resume();
  await done;
  server.close();
  return { result, clientGot: Buffer.concat(clientChunks), rest: Buffer.concat(rest) };
}

const greet = Buffer.from([5, 1, 0]);

test('IPv4 CONNECT, with pipelined payload kept for the upstream', async (t) => {
  const r = await serve(Buffer.concat([greet, Buffer.from([5, 1, 0, 1, 127, 0, 0, 9, 0x1f, 0x90]), Buffer.from('GET /')]));
  t.deepEqual(r.result, { kind: 'ip', addr: { ip: '127.0.0.9', port: 8080, family: 4 } });
  t.deepEqual([...r.clientGot], [5, 0], 'method 0x00 chosen; no CONNECT reply before the upstream is open');
  t.is(r.rest.toString(), 'GET /');
});

test('domain and IPv6 targets', async (t) => {
  const name = Buffer.from('Server.default.svc.cluster.local');
  const d = await serve(Buffer.concat([greet, Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([0, 80])]));
  t.deepEqual(d.result, { kind: 'domain', host: 'server.default.svc.cluster.local', port: 80 });
  const v6 = Buffer.from([5, 1, 0, 4, ...Array(15).fill(0), 1, 0, 81]);
  const r6 = await serve(Buffer.concat([greet, v6]));
  t.deepEqual(r6.result, { kind: 'ip', addr: { ip: '::1', port: 81, family: 6 } });
});

test('unsupported command → 0x07, address type → 0x08, no acceptable auth → 0xFF, bad version', async (t) => {
  const bind = await serve(Buffer.concat([greet, Buffer.from([5, 2, 0, 1, 1, 2, 3, 4, 0, 80])]));
  t.true(bind.result instanceof SocksError);
  t.is((bind.result as SocksError).reply, 0x07);
  t.is((bind.result as SocksError).reason, 'SOCKS_PROTOCOL');
  const atyp = await serve(Buffer.concat([greet, Buffer.from([5, 1, 0, 9, 1, 2, 3, 4, 0, 80])]));
  t.is((atyp.result as SocksError).reply, 0x08);
  const auth = await serve(Buffer.from([5, 1, 2]));
  t.true(auth.result instanceof SocksError);
  t.deepEqual([...auth.clientGot], [5, 0xff]);
  const v4 = await serve(Buffer.from([4, 1, 0, 80, 1, 2, 3, 4, 0]));
  t.regex((v4.result as Error).message, /unsupported SOCKS version 4/);
});

test('reply encoding and reason mapping (RFC 1928 §6)', (t) => {
  t.deepEqual([...buildSocksReply(0)], [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  t.deepEqual([...buildSocksReply(0, { ip: '127.0.0.1', port: 1080, family: 4 })], [5, 0, 0, 1, 127, 0, 0, 1, 4, 56]);
  t.is(socksReplyFor('DENY'), 0x02);
  t.is(socksReplyFor('CONNECT'), 0x05);
  t.is(socksReplyFor('CONNECT_TIMEOUT'), 0x04);
  t.is(socksReplyFor('SOCKS_UNKNOWN_HOST'), 0x04);
  t.is(socksReplyFor('INTERNAL'), 0x01);
});
