import test from 'ava';
import { connect, type Socket } from 'node:net';
import { TestMesh, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { sumSamples } from '../../helpers/prom-text';
import { loadCapture } from '../../../src/native/capture';
import { prepareDial } from '../../../src/transport/socket-opts';

/**
 * Connection churn through two node proxies (captured outbound on node-a → HBONE → node-b →
 * the app): every application dial of node-b binds the client's IP as its source (the
 * loopback form of original source). A bind that reserves a port for any destination runs
 * the shared source IP out of ports under churn (EADDRINUSE); port-less binds let the kernel
 * choose per 4-tuple at connect time. The client binds its workload IP the same way, so the
 * test itself never runs short either.
 */
const CONNECTIONS = 20_000;
const CONCURRENCY = 50;

const ip = loopbackBlock();
const CLIENT = ip(10);
const SERVER = ip(20);
const VIP = ip(100);
const capture = loadCapture();

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;

/** One short connection from the client workload's IP: one byte there and back, then close. */
function oneConnection(): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!capture.available) return reject(new Error(capture.reason));
    const cap = capture;
    const d = prepareDial(4, CLIENT, { noDelay: true, keepalive: false, keepaliveTime: 0, createSocket: (f, o) => cap.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) });
    const s: Socket = connect({ host: VIP, port: 80, allowHalfOpen: true });
    d.attach(s, reject);
    let got = 0;
    s.on('error', reject);
    s.on('connect', () => s.write('x'));
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got === 1) s.end();
    });
    s.on('close', () => (got === 1 ? resolve() : reject(new Error(`connection closed after ${got} echoed bytes`))));
  });
}

if (!capture.available) {
  test.skip(`churn: skipped: ${capture.reason}`, () => undefined);
} else {
  test.before(async () => {
    mesh = new TestMesh(['node-a', 'node-b']);
    mesh.writeConfig({
      workloads: [
        { name: 'client', ips: [CLIENT], node: 'node-a' },
        { name: 'server', ips: [SERVER], node: 'node-b', services: { 'default/echo.default.svc.cluster.local': { 80: 8080 } } },
      ],
      services: [{ name: 'echo', hostname: 'echo.default.svc.cluster.local', vip: VIP, ports: { 80: 8080 } }],
    });
    await mesh.startCa();
    app = await startEchoServer(SERVER, 8080);
    const quiet = { LOG_LEVEL: 'warn', INBOUND_PLAINTEXT_ADDR: '' };
    a = await mesh.startNode('node-a', { ...quiet, OUTBOUND_ADDR: `${VIP}:80` });
    b = await mesh.startNode('node-b', quiet);
  });

  test.after.always(async () => {
    await mesh?.close();
    await app?.close();
  });

  test(`${CONNECTIONS} short connections at concurrency ${CONCURRENCY} through two proxies: zero failed dials`, async (t) => {
    t.timeout(300_000);
    const failures = new Map<string, number>();
    let next = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (next < CONNECTIONS) {
        next++;
        await oneConnection().catch((err: NodeJS.ErrnoException) => failures.set(err.code ?? err.message, (failures.get(err.code ?? err.message) ?? 0) + 1));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const ms = Date.now() - started;
    t.log(`${CONNECTIONS} connections at concurrency ${CONCURRENCY}: ${ms} ms (${Math.round((CONNECTIONS * 1000) / ms)}/s), client failures ${JSON.stringify(Object.fromEntries(failures))}`);
    t.deepEqual(Object.fromEntries(failures), {}, 'no client connection failed');
    const bm = await b.metrics();
    const am = await a.metrics();
    t.is(sumSamples(bm, 'istio_tcp_connections_failed_total'), 0, 'node-b: no failed connection');
    t.is(sumSamples(bm, 'ztunnel_ts_connection_failures_total'), 0, 'node-b: no failure of any reason');
    t.is(sumSamples(am, 'istio_tcp_connections_failed_total'), 0, 'node-a: no failed connection');
    t.is(sumSamples(bm, 'istio_tcp_connections_closed_total', { reporter: 'destination' }), CONNECTIONS, 'node-b dialled the app for every connection');
    t.is(app.peers.length, CONNECTIONS);
    t.true(app.peers.every((p) => p.startsWith(`${CLIENT}:`)), "the app saw the client's IP on every connection");
  });
}
