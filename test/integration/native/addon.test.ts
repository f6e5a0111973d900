/**
 * The capture addon's loader on loopback (no root needed): what happens when the addon is
 * missing or broken, errno-shaped errors, destination resolution; and, as root, that the
 * proxy's way of dialling (prepareDial) puts SO_MARK on the descriptor before connecting.
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
import { socketFd } from '../../../src/native/socket-fd';
import { ProxyError } from '../../../src/errors';
import { markedConnect } from '../../helpers/marked-connect';
import { prepareDial } from '../../../src/transport/socket-opts';

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
  if (!c.available) t.regex(c.reason, /stale or foreign: missing setMark, getMark, setTransparent, setFreebind, createDialSocket, dupFd \(rebuild/);
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

}

if (capture.available && process.getuid?.() === 0) {
  const cap = capture;
  const listen = async (t: { teardown(fn: () => void): void }, server: net.Server, host = '127.0.0.1'): Promise<number> => {
    await new Promise<void>((r) => server.listen({ host, port: 0 }, r));
    t.teardown(() => server.close());
    return (server.address() as net.AddressInfo).port;
  };

  test('prepareDial (the proxy\'s dialler) marks the descriptor before connect: the connected socket carries PACKET_MARK', async (t) => {
    const port = await listen(t, net.createServer((s) => s.on('error', () => undefined).end('ok')));
    const errors: Error[] = [];
    const s = markedConnect(cap, '127.0.0.1', port, 0x539, (e) => errors.push(e));
    await new Promise((r) => s.once('connect', r));
    t.is(cap.addon.getMark(socketFd(s)), 0x539);
    t.deepEqual(errors, []);
    s.destroy();
  });

  test('prepareDial with an explicit source address marks the descriptor and binds the source without Node binding a port', async (t) => {
    let seen = '';
    const port = await listen(t, net.createServer((s) => ((seen = s.remoteAddress ?? ''), s.on('error', () => undefined).end('ok'))));
    const d = prepareDial(4, '127.0.0.9', { noDelay: true, keepalive: false, keepaliveTime: 0, mark: 0x777, createSocket: (f, o) => cap.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) });
    t.is(d.localAddress, undefined, 'Node is not asked to bind (it would reserve a port)');
    const s = net.connect({ host: '127.0.0.1', port });
    d.attach(s, (e) => t.fail(e.message));
    await new Promise((r) => s.once('connect', r));
    t.is(cap.addon.getMark(socketFd(s)), 0x777);
    t.is(s.localAddress, '127.0.0.9');
    s.resume();
    await new Promise((r) => s.once('end', r));
    t.is(seen, '127.0.0.9');
    s.destroy();
  });

  test('prepareDial with a transparent source dials from an address this host does not have (original source)', async (t) => {
    let seen = '';
    // 127.0.0.0/8 is all local; a transparent bind is needed for 192.0.2.x, which is not.
    const port = await listen(t, net.createServer((s) => ((seen = s.remoteAddress ?? ''), s.on('error', () => undefined).end('ok'))), '0.0.0.0');
    const errors: Error[] = [];
    const d = prepareDial(4, '192.0.2.77', { noDelay: true, keepalive: false, keepaliveTime: 0, mark: 0, createSocket: (f, o) => cap.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) }, true);
    const s = net.connect({ host: '127.0.0.1', port });
    d.attach(s, (e) => errors.push(e));
    s.on('error', () => undefined);
    // Without routing rules the SYN-ACK goes nowhere; the bind itself is what is proven here.
    await new Promise((r) => setImmediate(r));
    t.deepEqual(errors, []);
    t.false(s.destroyed, 'the transparent bind to a foreign address succeeded');
    t.is(seen, '');
    s.destroy();
    const plain = prepareDial(4, '192.0.2.77', { noDelay: true, keepalive: false, keepaliveTime: 0, mark: 0, createSocket: (f, o) => cap.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) });
    const refused = net.connect({ host: '127.0.0.1', port });
    const failed = new Promise<Error>((r) => refused.once('error', r));
    plain.attach(refused, (e) => errors.push(e));
    t.regex((await failed).message, /bind: EADDRNOTAVAIL/, 'without IP_TRANSPARENT the foreign source cannot be bound');
  });

  test('prepareDial on tls.connect marks the TCP socket under TLS (HBONE dialer case)', async (t) => {
    const dir = tmpDir(t);
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=test', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    const server = tls.createServer({ key: fs.readFileSync(path.join(dir, 'k.pem')), cert: fs.readFileSync(path.join(dir, 'c.pem')) }, (s) => s.on('error', () => undefined).end('tls-ok'));
    const port = await listen(t, server);
    const d = prepareDial(4, undefined, { noDelay: true, keepalive: false, keepaliveTime: 0, mark: 0x539, createSocket: (f, o) => cap.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) });
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(d.localAddress ? { localAddress: d.localAddress } : {}) });
    d.attach(s, (e) => t.fail(e.message));
    await new Promise((res) => s.once('secureConnect', res));
    t.is(cap.addon.getMark(socketFd(s)), 0x539);
    const body = await new Promise<string>((res) => {
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      s.on('end', () => res(got));
    });
    t.is(body, 'tls-ok');
  });
} else {
  test.skip('prepareDial marking: skipped: needs root (CAP_NET_ADMIN for SO_MARK) and the built addon', () => undefined);
}
