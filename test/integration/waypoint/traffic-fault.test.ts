import { waitUntil } from '../../helpers/node-harness';
import test from 'ava';
import * as http2 from 'node:http2';
import { WaypointMesh, get } from './harness';
import { FailingBackend, adminJson, applyL7, logsSince } from './traffic-backend';
import { sumSamples } from '../../helpers/prom-text';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * VirtualService fault injection end to end: fixed delays and aborts (HTTP status or
 * gRPC status) at a percentage, matched like routes, with Envoy's DI / FI flags.
 */
const m = new WaypointMesh();
let fwd: SocketAddr;
let v1: FailingBackend;

const VS = (fault: string, extraRoutes = ''): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: faults, namespace: default }
spec:
  hosts: [server.default.svc.cluster.local]
  http:
${extraRoutes}  - route: [{ destination: { host: server-v1 } }]
    fault:
${fault}`;

test.before(async () => {
  v1 = await new FailingBackend(m.V1, 8080, 'v1').start();
  m.track(v1);
  await m.start('');
  fwd = await m.forwarder({ host: m.VIP, port: 80 });
});

test.after.always(() => m.close());

test.serial('abort 25% with HTTP 503: the share over 200 requests is within tolerance; flag FI; the backend never sees them', async (t) => {
  await applyL7(m, VS('      abort: { httpStatus: 503, percentage: { value: 25 } }\n'));
  v1.reset();
  const from = m.requestLogs().length;
  const codes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const r = await get(fwd, `/a${i}`);
    codes.push(r.status);
    if (r.status === 503) t.is(r.text, 'fault filter abort');
  }
  const aborted = codes.filter((c) => c === 503).length;
  t.log(`aborted ${aborted}/200`);
  t.true(aborted >= 35 && aborted <= 65, `aborted ${aborted} of 200, expected 25% ± 7.5%`);
  t.is(v1.requests, 200 - aborted, 'aborted requests are answered by the waypoint (no retry of a fault)');
  const flags = logsSince(m, from).map((l) => l['response_flags']);
  t.is(flags.filter((f) => f === 'FI').length, aborted);
  const metrics = await m.wpMetrics();
  t.is(sumSamples(metrics, 'istio_requests_total', { response_flags: 'FI', response_code: '503' }), aborted);
});

test.serial('delay 150ms at 40%: delayed share within tolerance, each delayed request took at least the delay; flag DI', async (t) => {
  await applyL7(m, VS('      delay: { fixedDelay: 150ms, percentage: { value: 40 } }\n'));
  const from = m.requestLogs().length;
  let slow = 0;
  for (let i = 0; i < 60; i++) {
    const t0 = Date.now();
    t.is((await get(fwd, `/d${i}`)).status, 200);
    if (Date.now() - t0 >= 150) slow++;
  }
  const logs = logsSince(m, from);
  const delayed = logs.filter((l) => l['response_flags'] === 'DI');
  t.log(`delayed ${delayed.length}/60 (slow by the clock: ${slow})`);
  t.true(delayed.length >= 14 && delayed.length <= 34, `delayed ${delayed.length} of 60, expected 40% ± 16%`);
  t.true(slow >= delayed.length, 'every delayed request took at least 150ms');
  for (const l of delayed) t.true(Number(String(l['duration']).replace('ms', '')) >= 149);
});

test.serial('delay and abort together: the delay is injected first, then the abort; both flags', async (t) => {
  await applyL7(m, VS('      delay: { fixedDelay: 100ms, percent: 100 }\n      abort: { httpStatus: 418, percentage: { value: 100 } }\n'));
  const from = m.requestLogs().length;
  const t0 = Date.now();
  const r = await get(fwd, '/both');
  t.is(r.status, 418);
  t.true(Date.now() - t0 >= 100);
  t.is(logsSince(m, from).at(-1)!['response_flags'], 'DI,FI');
});

test.serial('faults are matched like routes: only the http route whose match fits injects', async (t) => {
  await applyL7(
    m,
    VS(
      '      abort: { httpStatus: 500 }\n',
      `  - match: [{ headers: { x-no-fault: { exact: "1" } } }]
    route: [{ destination: { host: server-v1 } }]
`,
    ),
  );
  t.is((await get(fwd, '/m1')).status, 500);
  t.is((await get(fwd, '/m2', { 'x-no-fault': '1' })).status, 200);
  const ex = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/m1`);
  t.like(ex.traffic, { virtualService: { name: 'default/faults', http: 1 }, fault: { delay: null, abort: { httpStatus: 500, grpcStatus: null, percent: 100 } } });
  const ex2 = await adminJson(m, `/debug/explain?dst=${m.VIP}:80&path=/m1&header=x-no-fault:1`);
  t.like(ex2.traffic, { virtualService: { http: 0 }, fault: null });
});

test.serial('a gRPC abort answers with the gRPC status (trailers-only, HTTP 200)', async (t) => {
  await applyL7(m, VS('      abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } }\n'));
  const s = http2.connect(`http://127.0.0.1:${fwd.port}`);
  t.teardown(() => s.close());
  const st = s.request({ ':method': 'POST', ':path': '/echo.Echo/Say', ':authority': 'server.default.svc.cluster.local', 'content-type': 'application/grpc', te: 'trailers' });
  st.end(Buffer.from([0, 0, 0, 0, 0]));
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    st.on('response', resolve);
    st.on('error', reject);
  });
  st.resume();
  t.is(Number(headers[':status']), 200);
  t.is(headers['grpc-status'], '14');
  // The request is recorded when its stream closes, which may trail the response headers.
  await waitUntil(async () => sumSamples(await m.wpMetrics(), 'istio_requests_total', { response_flags: 'FI', grpc_response_status: '14' }) >= 1, 5000, () => 'an FI request with gRPC status 14 in istio_requests_total');
  t.pass();
});
