import test from 'ava';
import { request } from 'node:http';
import { NodeApp } from '../../../src/app/node-app';
import { loadNodeConfig } from '../../../src/config/node-config';
import { LogCollector } from '../../helpers/log-collector';
import type { SocketAddr } from '../../../src/util/socket-addr';
import { httpRequest } from '../../helpers/http';

const BASE = ['--admin-addr', '127.0.0.1:0', '--stats-addr', '127.0.0.1:0', '--readiness-addr', '127.0.0.1:0', '--outbound-addr', '', '--inbound-addr', '', '--inbound-plaintext-addr', '', '--auth-token', 'literal'];

/** GET with the body as bytes (a snapshot is large; no string decoding per chunk). */
function getBytes(addr: SocketAddr, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request({ host: addr.ip, port: addr.port, path, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

let app: NodeApp;
let admin: SocketAddr;

test.before(async () => {
  const { config } = loadNodeConfig({}, BASE);
  app = new NodeApp({ config, logDestination: new LogCollector(), processMetrics: false });
  admin = (await app.start()).admin!;
});

test.after.always(async () => {
  await app?.close();
});

test.serial('CPU profile for N seconds: a .cpuprofile with samples from this process; bounds refused with 400', async (t) => {
  const started = Date.now();
  // Keep the event loop busy meanwhile so the profile has samples of JS.
  const busy = setInterval(() => {
    let x = 0;
    for (let i = 0; i < 1e5; i++) x += Math.sqrt(i);
    return x;
  }, 5);
  const r = await getBytes(admin, '/debug/pprof/profile?seconds=1&frequency=500');
  clearInterval(busy);
  t.is(r.status, 200);
  t.true(Date.now() - started >= 1000, 'the profile covered the requested second');
  t.regex(String(r.headers['content-disposition']), /attachment; filename="cpu-\d+\.cpuprofile"/);
  const profile = JSON.parse(r.body.toString('utf8')) as { nodes: { callFrame: { functionName: string } }[]; samples: number[]; startTime: number; endTime: number };
  t.true(profile.nodes.length > 1 && profile.samples.length > 0);
  t.true(profile.endTime - profile.startTime >= 900_000, 'about one second of samples (µs)');
  for (const bad of ['seconds=0', 'seconds=301', 'frequency=5000', 'seconds=abc']) {
    const b = await httpRequest(admin, `/debug/pprof/profile?${bad}`);
    t.is(b.status, 400, bad);
    t.regex(b.body, /must be an integer from/);
  }
  t.is((await httpRequest(admin, '/debug/pprof/profile', 'POST')).status, 405);
});

test.serial('one profile at a time: a second request while one runs gets 409', async (t) => {
  const first = getBytes(admin, '/debug/pprof/profile?seconds=1');
  await new Promise((r) => setTimeout(r, 200));
  const second = await httpRequest(admin, '/debug/pprof/heap');
  t.is(second.status, 409);
  t.is((await first).status, 200);
});

test.serial('heap snapshot: a complete V8 .heapsnapshot of this process', async (t) => {
  const r = await getBytes(admin, '/debug/pprof/heap');
  t.is(r.status, 200);
  t.regex(String(r.headers['content-disposition']), /filename="heap-\d+\.heapsnapshot"/);
  const snap = JSON.parse(r.body.toString('utf8')) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; strings: string[] };
  t.true(snap.snapshot.node_count > 1000);
  t.true(snap.snapshot.meta.node_fields.includes('name'));
  t.true(snap.strings.includes('NodeApp'), 'the snapshot is of this process');
});

test.serial('the profiling endpoints are on the loopback-only admin server and listed in its index', async (t) => {
  t.is(admin.ip, '127.0.0.1');
  const index = (await httpRequest(admin, '/')).body;
  t.regex(index, /\/debug\/pprof\/profile/);
  t.regex(index, /\/debug\/pprof\/heap/);
});
