/**
 * The capture addon's loader and socket helpers on loopback (no root needed): what happens
 * when the addon is missing or broken, and that Node adopts addon-created descriptors as
 * ordinary sockets (connect, bytes, half-close, listen).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCapture, describeCapture, ADDON_FILE } from '../../../src/native/capture';
import { resolveDestination, originalDestination } from '../../../src/native/orig-dst';
import { connectMarked, listenNative, markBeforeConnect } from '../../../src/native/sockets';
import { socketFd } from '../../../src/native/socket-fd';
import { ProxyError } from '../../../src/errors';
import { createProxySocketFactory } from '../../../src/native/socket-factory';

const capture = loadCapture();

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ztts-addon-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test('missing addon: available=false with a reason naming the file and how to build it', (t) => {
  const c = loadCapture({ candidates: ['/nonexistent/a.node', '/nonexistent/b.node'] });
  t.false(c.available);
  if (c.available) return;
  t.regex(c.reason, /^addon not built: build\/Release\/ztunnel_capture\.node not found/);
  t.regex(c.reason, /\/nonexistent\/a\.node/);
  t.regex(c.reason, /scripts\/build-native\.js/);
  t.is(describeCapture(c), `transparent capture unavailable: ${c.reason}`);
});

test('corrupt addon file: available=false with the dlopen error, never a throw', (t) => {
  const file = path.join(tmpDir(t), 'ztunnel_capture.node');
  fs.writeFileSync(file, 'not an ELF object');
  const c = loadCapture({ candidates: [file] });
  t.false(c.available);
  if (!c.available) t.regex(c.reason, new RegExp(`^addon not loadable: ${file.replace(/[.]/g, '\\.')}: .*(invalid ELF header|file too short)`));
});

test('stale addon missing functions is reported as such', (t) => {
  const file = path.join(tmpDir(t), 'stale.js');
  fs.writeFileSync(file, 'module.exports = { getOriginalDst() { return null; } };');
  const c = loadCapture({ candidates: [file] });
  t.false(c.available);
  if (!c.available) t.regex(c.reason, /stale or foreign: missing setMark, getMark, setTransparent, setFreebind, createTcpSocket, createTcpListener/);
});

test('non-Linux platforms report capture as Linux-only', (t) => {
  const c = loadCapture({ platform: 'darwin' });
  t.deepEqual(c, { available: false, reason: 'transparent capture is Linux-only (platform darwin)' });
});

test('without the addon the destination is the socket local address (explicit listener case)', async (t) => {
  const server = net.createServer((s) => {
    const r = resolveDestination({ available: false, reason: 'test' }, s);
    s.end(JSON.stringify(r));
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const got = await new Promise<string>((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let s = '';
    c.on('data', (b: Buffer) => (s += b.toString()));
    c.on('end', () => resolve(s));
    c.on('error', reject);
  });
  t.deepEqual(JSON.parse(got), { addr: { ip: '127.0.0.1', port, family: 4 }, source: 'local_address' });
});

if (!capture.available) {
  test.skip(`addon socket helpers: skipped: ${capture.reason}`, () => undefined);
} else {
  const cap = capture;

  test(`the built addon loads from ${ADDON_FILE}`, (t) => {
    t.true(cap.path.endsWith(ADDON_FILE));
  });

  test('addon errors carry the errno name as code and the syscall', (t) => {
    const err = t.throws(() => cap.addon.getOriginalDst(987654));
    t.is((err as NodeJS.ErrnoException).code, 'EBADF');
    t.is((err as NodeJS.ErrnoException).syscall, 'getsockopt(SO_ORIGINAL_DST)');
    t.regex(err!.message, /^getsockopt\(SO_ORIGINAL_DST\): EBADF \(Bad file descriptor\)$/);
    t.throws(() => cap.addon.setMark('x' as unknown as number, 1), { instanceOf: TypeError, message: /argument 1 \(fd\) must be a number/ });
    t.throws(() => cap.addon.createTcpSocket(5 as 4), { instanceOf: TypeError, message: /family\) must be 4 or 6/ });
  });

  test('resolveDestination wraps addon failures (closed socket) in a ProxyError', async (t) => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    t.teardown(() => server.close());
    const s = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    await new Promise((r) => s.once('connect', r));
    s.destroy();
    const err = t.throws(() => originalDestination(cap, s));
    t.true(err instanceof ProxyError);
  });

  test('connectMarked (mark 0): an addon-created descriptor is a normal Node client socket, half-close included', async (t) => {
    const received: Buffer[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (b: Buffer) => received.push(b));
      s.on('end', () => s.end('bye'));
    });
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    t.teardown(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const sock = connectMarked(cap, { host: '127.0.0.1', port, mark: 0, allowHalfOpen: true, noDelay: true, keepAliveMs: 180_000 });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    t.true(socketFd(sock) >= 0);
    t.is(sock.remotePort, port);
    const reply: Buffer[] = [];
    sock.on('data', (b: Buffer) => reply.push(b));
    sock.end('hello over an adopted fd');
    await new Promise((r) => sock.once('close', r));
    t.is(Buffer.concat(received).toString(), 'hello over an adopted fd');
    t.is(Buffer.concat(reply).toString(), 'bye');
    t.is(sock.bytesWritten, 'hello over an adopted fd'.length);
    t.is(sock.bytesRead, 3);
  });

  test('connectMarked to a closed port fails with ECONNREFUSED like net.connect', async (t) => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const sock = connectMarked(cap, { host: '127.0.0.1', port, mark: 0 });
    const err = await new Promise<NodeJS.ErrnoException>((r) => sock.once('error', r));
    t.is(err.code, 'ECONNREFUSED');
  });

  test('connectMarked rejects host names (it never resolves DNS)', (t) => {
    t.throws(() => connectMarked(cap, { host: 'localhost', port: 1, mark: 0 }), { instanceOf: TypeError });
  });

  test('listenNative: SO_REUSEPORT lets two servers share a port; EADDRINUSE without it', async (t) => {
    const a = net.createServer((s) => s.end('a'));
    await listenNative(cap, a, { host: '127.0.0.1', port: 0, reusePort: true });
    t.teardown(() => a.close());
    const port = (a.address() as net.AddressInfo).port;
    const b = net.createServer((s) => s.end('b'));
    await listenNative(cap, b, { host: '127.0.0.1', port, reusePort: true });
    t.teardown(() => b.close());
    t.is((b.address() as net.AddressInfo).port, port);
    const c = net.createServer();
    const err = await t.throwsAsync(listenNative(cap, c, { host: '127.0.0.1', port, reusePort: false }));
    t.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE');
    t.is((err as NodeJS.ErrnoException).syscall, 'bind');
  });

  test('listenNative on [::] is dual-stack (v4-mapped clients are accepted)', async (t) => {
    const server = net.createServer((s) => s.end(s.remoteAddress ?? ''));
    try {
      await listenNative(cap, server, { host: '::', port: 0 });
    } catch (err) {
      t.log(`IPv6 unavailable here: ${String(err)}`);
      t.pass();
      return;
    }
    t.teardown(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port });
      let s = '';
      c.on('data', (b: Buffer) => (s += b.toString()));
      c.on('end', () => resolve(s));
      c.on('error', reject);
    });
    t.is(got, '::ffff:127.0.0.1');
  });
}

test('socket factory without a mark or without the addon uses plain net.connect and says why', (t) => {
  t.deepEqual(
    { marking: createProxySocketFactory(capture, null).marking, status: createProxySocketFactory(capture, null).status },
    { marking: false, status: 'proxy sockets are not marked (no PACKET_MARK)' },
  );
  const f = createProxySocketFactory({ available: false, reason: 'addon not built: x' }, 0x539);
  t.false(f.marking);
  t.is(f.status, 'proxy sockets are not marked: addon not built: x');
});

if (capture.available && process.getuid?.() === 0) {
  const cap = capture;
  test('socket factory as root marks every connection with PACKET_MARK from the first packet', async (t) => {
    const f = createProxySocketFactory(cap, 0x539);
    t.true(f.marking);
    t.is(f.status, 'proxy sockets carry SO_MARK 0x539');
    const server = net.createServer((s) => {
      s.on('error', () => undefined); // the client destroys first: ECONNRESET here is expected
      s.end('ok');
    });
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    t.teardown(() => server.close());
    const s = f.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
    await new Promise((r) => s.once('connect', r));
    t.is(cap.addon.getMark(socketFd(s)), 0x539);
    s.destroy();
  });
} else {
  test.skip('socket factory marking: skipped: needs root (CAP_NET_ADMIN for SO_MARK) and the built addon', () => undefined);
}

if (capture.available && process.getuid?.() === 0) {
  const cap = capture;
  const listen = async (t: { teardown(fn: () => void): void }, server: net.Server, host = '127.0.0.1'): Promise<number> => {
    await new Promise<void>((r) => server.listen({ host, port: 0 }, r));
    t.teardown(() => server.close());
    return (server.address() as net.AddressInfo).port;
  };

  test('markBeforeConnect: net.connect then mark (same tick) → the connected socket carries the mark', async (t) => {
    const port = await listen(t, net.createServer((s) => s.on('error', () => undefined).end('ok')));
    const errors: Error[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    markBeforeConnect(cap, s, 0x539, (e) => errors.push(e));
    await new Promise((r) => s.once('connect', r));
    t.is(cap.addon.getMark(socketFd(s)), 0x539);
    t.deepEqual(errors, []);
    t.throws(() => markBeforeConnect(cap, s, 0x539), { message: /before connect: the socket is already connected/ });
    s.destroy();
  });

  test('markBeforeConnect with a localAddress (bind first) marks the bound descriptor', async (t) => {
    const port = await listen(t, net.createServer((s) => s.on('error', () => undefined).end('ok')));
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    markBeforeConnect(cap, s, 0x777);
    await new Promise((r) => s.once('connect', r));
    t.is(cap.addon.getMark(socketFd(s)), 0x777);
    s.destroy();
  });

  test('markBeforeConnect on tls.connect marks the TCP socket under TLS (HBONE dialer case)', async (t) => {
    const dir = tmpDir(t);
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=test', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    const server = tls.createServer({ key: fs.readFileSync(path.join(dir, 'k.pem')), cert: fs.readFileSync(path.join(dir, 'c.pem')) }, (s) => s.on('error', () => undefined).end('tls-ok'));
    const port = await listen(t, server);
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    markBeforeConnect(cap, s, 0x539);
    await new Promise((res) => s.once('secureConnect', res));
    t.is(cap.addon.getMark(socketFd(s)), 0x539);
    const body = await new Promise<string>((res) => {
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      s.on('end', () => res(got));
    });
    t.is(body, 'tls-ok');
  });
}
