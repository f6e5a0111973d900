import test from 'ava';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { TestMesh, type TestNode } from '../../helpers/node-harness';
import { loopbackBlock } from '../../helpers/loopback';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server';
import { socksConnect } from '../../helpers/socks-client';

/**
 * KEEPALIVE_ENABLED / KEEPALIVE_TIME reach the sockets, observed from outside the process
 * with `ss -o` (the kernel's keepalive timer): node-a (KEEPALIVE_TIME=77s) sets keepalive
 * on the app socket it accepted and on the HBONE connection it dialled; node-b
 * (KEEPALIVE_ENABLED=false) dials its app without it.
 */
const ip = loopbackBlock();
const NODE_A = ip(1);
const CLIENT = ip(10);
const SERVER = ip(20);

let mesh: TestMesh;
let a: TestNode;
let b: TestNode;
let app: EchoServer;

test.before(async () => {
  mesh = new TestMesh(['node-a', 'node-b']);
  mesh.writeConfig({
    workloads: [
      { name: 'client', ips: [CLIENT], node: 'node-a' },
      { name: 'server', ips: [SERVER], node: 'node-b' },
    ],
  });
  await mesh.startCa();
  app = await startEchoServer(SERVER, 0);
  a = await mesh.startNode('node-a', { SOCKS5_ADDR: `${NODE_A}:0`, KEEPALIVE_TIME: '77s' });
  b = await mesh.startNode('node-b', { KEEPALIVE_ENABLED: 'false' });
});

test.after.always(async () => {
  await mesh?.close();
  await app?.close();
});

/** The keepalive timer (seconds left) of the one established socket `filter` selects, or null when it has none. */
function keepaliveSeconds(filter: string): number | null {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' }).trim();
  const lines = out.split('\n').filter((l) => l !== '');
  if (lines.length !== 1) throw new Error(`expected one socket for ${filter}, ss says:\n${out}`);
  const m = /timer:\(keepalive,(?:(\d+)min)?(\d+)(?:\.\d+)?sec/.exec(lines[0]!);
  return m ? Number(m[1] ?? 0) * 60 + Number(m[2]) : null;
}

/**
 * ss shows one timer per socket: while sent bytes are unacknowledged it is the
 * retransmission timer (`on`), so look until the socket is quiet (bounded).
 */
async function quietKeepaliveSeconds(filter: string): Promise<number | null> {
  for (let i = 0; i < 50; i++) {
    const out = execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' });
    if (!out.includes('timer:(on,')) return keepaliveSeconds(filter);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${filter} never became quiet`);
}

test('accepted app sockets and dialled HBONE connections carry KEEPALIVE_TIME; KEEPALIVE_ENABLED=false dials without keepalive', async (t) => {
  const socks = a.listener('socks5');
  const s = await socksConnect(socks, { host: SERVER, port: app.addr.port }, CLIENT);
  t.teardown(() => s.destroy());
  s.write('ping');
  const [echo] = (await once(s, 'data')) as [Buffer];
  t.is(echo.toString(), 'ping', 'the connection is up end to end (and stays open while ss looks)');
  const accepted = await quietKeepaliveSeconds(`src ${socks.ip}:${socks.port}`);
  t.truthy(accepted !== null && accepted > 60 && accepted <= 77, `accepted SOCKS socket keepalive: ${accepted}`);
  const hbone = b.listener('inbound', SERVER);
  const tunnel = await quietKeepaliveSeconds(`dst ${hbone.ip}:${hbone.port}`);
  t.truthy(tunnel !== null && tunnel > 60 && tunnel <= 77, `HBONE connection keepalive: ${tunnel}`);
  t.is(await quietKeepaliveSeconds(`dst ${SERVER}:${app.addr.port}`), null, 'node-b dialled its app without keepalive');
});
