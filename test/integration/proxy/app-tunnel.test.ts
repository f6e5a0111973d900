import test from 'ava';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { TestMesh, waitUntil, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { socksConnect } from '../../helpers/socks-client';
import { haproxySkipReason, pythonSkipReason, startHaproxyReader, startPythonReader, type Pp2Info, type TestServer } from '../../helpers/proxy-v2';

/**
 * Workload application tunnels (`applicationTunnel: {protocol, port}`) on the inbound path,
 * read by independent PROXY v2 parsers: `server`'s tunnel port is the Python reader written
 * from the protocol's specification (it reports the header, TLVs included, then echoes),
 * `hap`'s is HAProxy with `accept-proxy` (it answers an HTTP request with the addresses it
 * took from the header). `moved` has a NONE tunnel: only its port changes, no header.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);
const HAP = ip(21);
const MOVED = ip(22);
const TUNNEL_PORT = 15088;
const APP_PORT = 8080;
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';

const skip = pythonSkipReason() ?? haproxySkipReason();
let mesh: TestMesh;
let b: TestNode;
let socks: { ip: string; port: number; family: 4 | 6 };
let reader: TestServer;
let haproxy: TestServer;
let moved: EchoServer;

if (skip !== null) {
  test.skip(`application tunnel interop: skipped: ${skip}`, () => undefined);
} else {
  test.before(async () => {
    mesh = new TestMesh(['node-a', 'node-b']);
    mesh.writeConfig({
      workloads: [
        { name: 'client', ips: [CLIENT], node: 'node-a' },
        { name: 'server', ips: [SERVER], node: 'node-b', applicationTunnel: { protocol: 'PROXY', port: TUNNEL_PORT } },
        { name: 'hap', ips: [HAP], node: 'node-b', applicationTunnel: { protocol: 'PROXY', port: TUNNEL_PORT } },
        { name: 'moved', ips: [MOVED], node: 'node-b', applicationTunnel: { protocol: 'NONE', port: TUNNEL_PORT } },
      ],
    });
    await mesh.startCa();
    reader = await startPythonReader(SERVER, TUNNEL_PORT);
    haproxy = await startHaproxyReader(HAP, TUNNEL_PORT);
    moved = await startEchoServer(MOVED, TUNNEL_PORT);
    const a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0` });
    b = await mesh.startNode('node-b');
    socks = a.listener('socks5');
  });

  test.after.always(async () => {
    await mesh?.close();
    await reader?.close();
    await haproxy?.close();
    await moved?.close();
  });

  test('PROXY tunnel: the app reads a v2 header with the client address, the requested address and the TLV 0xD0 identity', async (t) => {
    const s = await socksConnect(socks, { host: SERVER, port: APP_PORT }, CLIENT);
    t.teardown(() => s.destroy());
    const line = await readLine(s);
    const info = JSON.parse(line) as Pp2Info;
    t.like(info, { version: 2, command: 'PROXY', family: 'INET', transport: 'STREAM', dst: `${SERVER}:${APP_PORT}`, tlvs: { '0xd0': CLIENT_ID } }, line);
    // The source is the HBONE peer (the client's node proxy dials from the client's IP on a loopback mesh).
    t.regex(info.src ?? '', new RegExp(`^${CLIENT.replace(/\./g, '\\.')}:\\d+$`));
    const hbonePeerPort = Number((info.src ?? '').split(':')[1]);
    t.true(hbonePeerPort > 0 && hbonePeerPort !== APP_PORT);

    // After the header the tunnel carries the client's bytes unchanged, both ways.
    s.write('after-the-header');
    t.is(await readBytes(s, 16), 'after-the-header');
    s.end();
    await once(s, 'close');
    await waitUntil(() => b.access('connection complete').some((l) => l['dst.hbone_addr'] === `${SERVER}:${APP_PORT}`), 5000, () => 'no access log line');
    const rec = b.access('connection complete').find((l) => l['dst.hbone_addr'] === `${SERVER}:${APP_PORT}`)!;
    t.is(rec['bytes_recv'], 16, 'the header is not counted as the client\'s bytes');
    t.is(rec['bytes_sent'], Buffer.byteLength(line) + 1 + 16);
    t.is(rec['src.identity'], CLIENT_ID);
  });

  test('PROXY tunnel: HAProxy (accept-proxy) takes the client and requested addresses from the header', async (t) => {
    const s = await socksConnect(socks, { host: HAP, port: APP_PORT }, CLIENT);
    t.teardown(() => s.destroy());
    s.end(`GET /whoami HTTP/1.1\r\nHost: hap\r\nConnection: close\r\n\r\n`);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await once(s, 'close');
    const reply = Buffer.concat(chunks).toString();
    t.regex(reply, /^HTTP\/1\.1 200 /, reply);
    t.regex(reply, new RegExp(`src=${CLIENT.replace(/\./g, '\\.')}:\\d+ dst=${HAP.replace(/\./g, '\\.')}:${APP_PORT} proxied=1\\n$`), reply);
  });

  test('NONE tunnel: the connection goes to the tunnel port with no header', async (t) => {
    const s = await socksConnect(socks, { host: MOVED, port: APP_PORT }, CLIENT);
    t.teardown(() => s.destroy());
    s.write('plain-bytes');
    t.is(await readBytes(s, 11), 'plain-bytes', 'the echo on the tunnel port sees exactly the client bytes');
  });
}

function readLine(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      if (buf.length > nl + 1) s.unshift(Buffer.from(buf.slice(nl + 1)));
      resolve(buf.slice(0, nl));
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed before a line: ${JSON.stringify(buf)}`)));
  });
}

function readBytes(s: Socket, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < n) return;
      s.off('data', onData);
      resolve(buf.toString('utf8'));
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed after ${buf.length} of ${n} bytes`)));
  });
}
