/**
 * native/netns.c through src/inpod/pod-netns.ts, as root in a test-made namespace: sockets
 * are created inside the pod's namespace while no thread of this process ever stays there;
 * SO_MARK and SO_REUSEPORT are set; Node adopts listeners, dial sockets and UDP sockets; the
 * SEQPACKET transport carries descriptors and drops them on truncation without leaking.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { Topology, rootSkipReason } from '../../helpers/netns';
import { loadNetnsAddon, type NetnsAddon } from '../../../src/inpod/netns-addon';
import { PodNetns, netnsInode } from '../../../src/inpod/pod-netns';
import { socketFd } from '../../../src/native/socket-fd';

const support = loadNetnsAddon();
const skip = support.available ? rootSkipReason(['ip']) : support.reason;
const addon = (support.available ? support.addon : null) as NetnsAddon;
const topo = new Topology('nsk');
let pod: PodNetns;

const threadNamespaces = (): Set<string> => new Set(fs.readdirSync('/proc/self/task').map((t) => fs.readlinkSync(`/proc/self/task/${t}/ns/net`)));
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

test.before(async () => {
  if (skip) return;
  const ns = await topo.addNamespace('pod');
  pod = PodNetns.open(addon, `/var/run/netns/${ns}`, 0x539);
});
test.after.always(async () => {
  pod?.close();
  await topo.destroy();
});

if (skip) {
  test('netns sockets (skipped)', (t) => {
    t.log(`skipped: ${skip}`);
    t.pass();
  });
} else {
  test.serial('a listener made in the pod namespace serves there, not in ours, and no thread stays in the pod', async (t) => {
    const before = threadNamespaces();
    const server = await pod.listenTcp('::', 0, false);
    t.teardown(() => server.close());
    server.on('connection', (s) => s.end('from-pod'));
    const port = (server.address() as net.AddressInfo).port;
    t.deepEqual(threadNamespaces(), before, 'every thread is still in the namespace it started in');
    t.is(before.size, 1);
    t.not(netnsInode(pod.fd), fs.statSync('/proc/self/ns/net').ino);

    const dial = pod.tcpSocket(4);
    dial.connect(port, '127.0.0.1');
    await once(dial, 'connect');
    t.is(addon.getMark(socketFd(dial)), 0x539, 'the dial socket carries PACKET_MARK');
    const [data] = (await once(dial, 'data')) as [Buffer];
    t.is(data.toString(), 'from-pod');
    dial.destroy();

    const host = net.connect(port, '127.0.0.1');
    const [err] = (await once(host, 'error')) as [NodeJS.ErrnoException];
    t.is(err.code, 'ECONNREFUSED', 'the port is not open in our own namespace');
  });

  test.serial('a dial socket is bound port-less to the given source before connect; a transparent one may bind a non-local address', async (t) => {
    const server = await pod.listenTcp('::', 0, false);
    t.teardown(() => server.close());
    server.on('connection', (s) => s.end(`${s.remoteAddress}`));
    const port = (server.address() as net.AddressInfo).port;
    const dial = pod.tcpSocket(4, '127.0.0.1');
    dial.connect(port, '127.0.0.1');
    const [data] = (await once(dial, 'data')) as [Buffer];
    t.is(data.toString(), '::ffff:127.0.0.1');
    dial.destroy();
    const freebind = pod.tcpSocket(4, '10.99.0.1', true);
    t.is(addon.getMark(socketFd(freebind)), 0x539);
    freebind.destroy();
    t.throws(() => pod.tcpSocket(4, '10.99.0.1', false), { code: 'EADDRNOTAVAIL', message: /^bind:/ });
    t.throws(() => addon.netnsTcpSocket(pod.fd, 6, 0, '127.0.0.1', false), { message: /not of the given family/ });
  });

  test.serial('SO_REUSEPORT lets a second listener share the port; without it the bind fails with EADDRINUSE', async (t) => {
    const a = await pod.listenTcp('::', 0, true);
    t.teardown(() => a.close());
    const port = (a.address() as net.AddressInfo).port;
    const b = await pod.listenTcp('::', port, true);
    t.teardown(() => b.close());
    t.is((b.address() as net.AddressInfo).port, port);
    const err = t.throws(() => addon.netnsTcpListener(pod.fd, '::', port, 0, false)) as NodeJS.ErrnoException;
    t.is(err.code, 'EADDRINUSE');
    t.is(err.syscall, 'bind');
  });

  test.serial('a UDP socket bound in the pod namespace is adopted by dgram', async (t) => {
    const u = await pod.udpSocket('127.0.0.1', 0);
    t.teardown(() => u.close());
    const port = u.address().port;
    const peer = await pod.udpSocket('127.0.0.1', 0);
    t.teardown(() => peer.close());
    peer.send('ping', port, '127.0.0.1');
    const [msg] = (await once(u, 'message')) as [Buffer];
    t.is(msg.toString(), 'ping');
  });

  test.serial('adopt() refuses a descriptor that is not a network namespace and closes it', (t) => {
    const fd = fs.openSync('/dev/null', 'r');
    const err = t.throws(() => PodNetns.adopt(addon, fd, 0));
    t.regex(err!.message, /descriptor \d+ is not a network namespace \(it is \/dev\/null\)/);
    t.throws(() => fs.fstatSync(fd), { code: 'EBADF' });
  });

  test.serial('setns failure names the call (a closed namespace descriptor)', (t) => {
    const p = PodNetns.open(addon, '/proc/self/ns/net', 0);
    p.close();
    t.throws(() => p.tcpSocket(4), { message: /already closed/ });
    t.throws(() => addon.netnsTcpSocket(1_000_000, 4, 0, null, false), { code: 'EBADF', message: /^setns:/ });
  });

  test.serial('SEQPACKET: one message per send, descriptors via SCM_RIGHTS, truncated ones closed, fd count flat', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ztts-seq-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sockPath = path.join(dir, 's.sock');
    const listener = addon.seqpacketListen(sockPath, 4);
    const client = addon.seqpacketConnect(sockPath);
    const server = addon.seqpacketAccept(listener);
    t.true(server >= 0);
    t.is(addon.seqpacketAccept(listener), -1, 'nothing else waiting');
    const baseline = openFds();
    for (let i = 0; i < 200; i++) {
      const ns = fs.openSync('/proc/self/ns/net', 'r');
      addon.seqpacketSend(client, Buffer.from(`m${i}`), [ns]);
      fs.closeSync(ns);
      const m = addon.seqpacketRecv(server, 64, 2)!;
      t.is(m.data.toString(), `m${i}`);
      t.is(m.fds.length, 1);
      t.true(fs.readlinkSync(`/proc/self/fd/${m.fds[0]}`).startsWith('net:['));
      fs.closeSync(m.fds[0]!);
      addon.seqpacketSend(client, Buffer.alloc(100, 1), [0, 1, 2]);
      const big = addon.seqpacketRecv(server, 64, 2)!;
      t.true(big.truncated, 'too long and too many descriptors: MSG_TRUNC/MSG_CTRUNC');
      t.deepEqual(big.fds, []);
    }
    t.is(openFds(), baseline, 'no descriptor leaked');
    t.is(addon.seqpacketRecv(server, 64, 2), null, 'non-blocking: nothing to read');

    const events: string[] = [];
    const closedSeen = new Promise<void>((resolve) => {
      const h = addon.pollStart(server, (error, readable, disconnected) => {
        const m = addon.seqpacketRecv(server, 64, 2);
        events.push(`${String(error)}:${readable}:${m ? m.data.length : 'none'}`);
        if (m && m.data.length === 0) {
          addon.pollStop(h);
          addon.pollStop(h);
          t.true(disconnected || readable);
          resolve();
        }
      });
    });
    addon.seqpacketSend(client, Buffer.from('x'), []);
    await new Promise((r) => setTimeout(r, 20));
    fs.closeSync(client);
    await closedSeen;
    t.deepEqual(events, ['null:true:1', 'null:true:0']);
    fs.closeSync(server);
    fs.closeSync(listener);
  });
}
