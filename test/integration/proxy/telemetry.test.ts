import test from 'ava';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createRegistry } from '../../../src/metrics/registry';
import { Telemetry } from '../../../src/telemetry/telemetry';
import { ConnectionResult } from '../../../src/telemetry/connection-result';
import { TRAFFIC_LABELS } from '../../../src/telemetry/tcp-metrics';
import { SpiffeId } from '../../../src/identity/spiffe';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { systemClock } from '../../../src/util/clock';
import { parsePrometheusText, sumSamples } from '../../helpers/prom-text';
import { workload, service } from '../../helpers/workloads';
import { RECORDED_TWICE } from '../../helpers/node-harness';

function setup(updateMs = 0) {
  const logs = new LogCollector();
  const logger = createLogger({ level: 'debug', format: 'json', destination: logs });
  const registry = createRegistry({ component: 'ztunnel', processMetrics: false });
  const telemetry = new Telemetry({ registry, logger, clock: systemClock, accessLogUpdateIntervalMs: updateMs, flushIntervalMs: 50 });
  return { logs, registry, telemetry };
}

/** A connected TCP pair on loopback: `accepted` is the server side. */
async function tcpPair(): Promise<{ client: Socket; accepted: Socket; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const acceptedP = once(server, 'connection');
  const client = connect(port, '127.0.0.1');
  const [accepted] = (await acceptedP) as [Socket];
  return { client, accepted, close: () => { client.destroy(); accepted.destroy(); server.close(); } };
}

const src = workload({ name: 'client', ip: '127.0.0.10', node: 'n1', canonicalName: 'client-app', canonicalRevision: 'v2', workloadName: 'client-deploy', locality: { region: 'r1', zone: 'z1', subzone: '' } });
const dst = workload({ name: 'server', ip: '127.0.0.20', node: 'n2', serviceAccount: 'server-sa', canonicalName: 'server-app', canonicalRevision: 'v3', workloadName: 'server-deploy' });
const svc = service({ name: 'server', vip: '10.96.0.1', ports: { 80: 8080 } });

test('ConnectionResult: labels in Istio order, bytes equal socket counters, recorded exactly once', async (t) => {
  const { logs, registry, telemetry } = setup();
  const pair = await tcpPair();
  t.teardown(pair.close);
  const srcId = SpiffeId.of('cluster.local', 'default', 'client');
  const dstId = SpiffeId.of('cluster.local', 'default', 'server-sa');
  const r = new ConnectionResult(telemetry, {
    direction: 'outbound',
    src: makeSocketAddr('127.0.0.10', 40000),
    dst: makeSocketAddr('127.0.0.20', 15008),
    hboneAddr: '127.0.0.20:8080',
    srcWorkload: src,
    dstWorkload: dst,
    dstService: svc,
    srcIdentity: srcId,
    dstIdentity: dstId,
    mtls: true,
  });
  r.setByteSource(pair.accepted, 'client');
  // client → server 1000 bytes (read by `accepted`), server → client 300 bytes (written by `accepted`).
  pair.client.write(Buffer.alloc(1000, 1));
  await new Promise<void>((res) => {
    let got = 0;
    pair.accepted.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= 1000) res();
    });
  });
  pair.accepted.write(Buffer.alloc(300, 2));
  await new Promise((res) => setTimeout(res, 50));
  t.true(r.record({ reason: null }));
  t.false(r.record({ reason: 'DENY' }), 'a second record is a no-op');
  t.is(logs.find((l) => l['msg'] === RECORDED_TWICE).length, 1, 'the second record is logged as an error');

  const m = parsePrometheusText(await registry.metrics());
  const opened = m.samples.filter((s) => s.name === 'istio_tcp_connections_opened_total');
  t.is(opened.length, 1);
  const o = opened[0]!;
  t.deepEqual(Object.keys(o.labels), [...TRAFFIC_LABELS]);
  t.deepEqual(o.labels, {
    reporter: 'source',
    source_workload: 'client-deploy',
    source_canonical_service: 'client-app',
    source_canonical_revision: 'v2',
    source_workload_namespace: 'default',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    source_app: 'client-app',
    source_version: 'v2',
    source_cluster: 'cluster1',
    destination_service: 'server.default.svc.cluster.local',
    destination_service_namespace: 'default',
    destination_service_name: 'server',
    destination_workload: 'server-deploy',
    destination_canonical_service: 'server-app',
    destination_canonical_revision: 'v3',
    destination_workload_namespace: 'default',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/server-sa',
    destination_app: 'server-app',
    destination_version: 'v3',
    destination_cluster: 'cluster1',
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
    source_region: 'r1',
    source_zone: 'z1',
    destination_region: 'unknown',
    destination_zone: 'unknown',
  });
  const val = (name: string): number => sumSamples(m, name);
  t.is(val('istio_tcp_connections_opened_total'), 1);
  t.is(val('istio_tcp_connections_closed_total'), 1);
  t.is(val('istio_tcp_connections_failed_total'), 0);
  t.is(val('istio_tcp_received_bytes_total'), 1000);
  t.is(val('istio_tcp_sent_bytes_total'), 300);
  t.is(m.samples.find((s) => s.name === 'istio_tcp_sockets_open' && s.labels['reporter'] === 'source')?.value, 0);

  const done = logs.find((l) => l['msg'] === 'connection complete');
  t.is(done.length, 1);
  const line = done[0]!;
  t.like(line, {
    scope: 'access',
    level: 'info',
    'src.addr': '127.0.0.10:40000',
    'src.workload': 'client',
    'src.namespace': 'default',
    'src.identity': 'spiffe://cluster.local/ns/default/sa/client',
    'dst.addr': '127.0.0.20:15008',
    'dst.hbone_addr': '127.0.0.20:8080',
    'dst.service': 'server.default.svc.cluster.local',
    'dst.workload': 'server',
    'dst.namespace': 'default',
    'dst.identity': 'spiffe://cluster.local/ns/default/sa/server-sa',
    direction: 'outbound',
    bytes_sent: 1000,
    bytes_recv: 300,
  });
  t.regex(String(line['duration']), /^\d+ms$/);
  t.is(logs.find((l) => l['msg'] === 'connection opened').length, 1);
});

test('a DENY outcome: WARN with reason, hint and policy; failed + reason counters; plaintext has no identities', async (t) => {
  const { logs, registry, telemetry } = setup();
  const r = new ConnectionResult(telemetry, {
    direction: 'inbound',
    src: makeSocketAddr('127.0.0.10', 40001),
    dst: makeSocketAddr('127.0.0.20', 8080),
    hboneAddr: null,
    srcWorkload: null,
    dstWorkload: dst,
    dstService: null,
    srcIdentity: null,
    dstIdentity: SpiffeId.of('cluster.local', 'default', 'server-sa'),
    mtls: false,
  });
  r.record({ reason: 'DENY', error: 'denied: explicitly denied by: istio-system/istio_converted_static_strict', policy: 'istio-system/istio_converted_static_strict' });
  const m = parsePrometheusText(await registry.metrics());
  const closed = m.samples.find((s) => s.name === 'istio_tcp_connections_closed_total')!;
  t.is(closed.labels['response_flags'], 'DENY');
  t.is(closed.labels['reporter'], 'destination');
  t.is(closed.labels['connection_security_policy'], 'unknown');
  t.is(closed.labels['source_principal'], 'unknown');
  t.is(closed.labels['source_workload'], 'unknown');
  t.is(m.samples.find((s) => s.name === 'istio_tcp_connections_failed_total')?.value, 1);
  t.deepEqual(m.samples.find((s) => s.name === 'ztunnel_ts_connection_failures_total')?.labels, { reporter: 'destination', reason: 'DENY' });
  const line = logs.find((l) => l['msg'] === 'connection complete')[0]!;
  t.is(line['level'], 'warn');
  t.is(line['reason'], 'DENY');
  t.is(line['policy'], 'istio-system/istio_converted_static_strict');
  t.truthy(line['hint']);
  t.false('src.identity' in line);
  t.false('dst.identity' in line, 'dst.identity only with mTLS');
});

test('terminate() wins over the copy outcome (DRAINED), and series of a removed workload disappear', async (t) => {
  const { registry, telemetry } = setup();
  let aborted = '';
  const r = new ConnectionResult(telemetry, {
    direction: 'outbound', src: makeSocketAddr('127.0.0.10', 1), dst: makeSocketAddr('127.0.0.20', 15008), hboneAddr: '127.0.0.20:80',
    srcWorkload: src, dstWorkload: dst, dstService: null, srcIdentity: null, dstIdentity: null, mtls: true,
  });
  r.onAbort((reason) => (aborted = reason));
  t.is(telemetry.tracker.size, 1);
  t.is(telemetry.tracker.terminateAll('DRAINED', 'deadline'), 1);
  t.is(aborted, 'DRAINED');
  r.record({ reason: 'RESET', error: 'socket destroyed' });
  t.is(telemetry.tracker.size, 0);
  let m = parsePrometheusText(await registry.metrics());
  t.is(m.samples.find((s) => s.name === 'istio_tcp_connections_closed_total')?.labels['response_flags'], 'CONNECT');
  t.is(m.samples.find((s) => s.name === 'ztunnel_ts_connection_failures_total')?.labels['reason'], 'DRAINED');
  t.true(telemetry.metrics.removeWorkload(dst) > 0);
  m = parsePrometheusText(await registry.metrics());
  t.is(m.samples.filter((s) => s.name.startsWith('istio_tcp_connections')).length, 0);
});

test('long-lived connections: the shared flusher moves bytes into counters and writes "connection update"', async (t) => {
  const { logs, registry, telemetry } = setup(100);
  const pair = await tcpPair();
  t.teardown(pair.close);
  const r = new ConnectionResult(telemetry, {
    direction: 'outbound', src: makeSocketAddr('127.0.0.10', 2), dst: makeSocketAddr('127.0.0.20', 8080), hboneAddr: null,
    srcWorkload: src, dstWorkload: dst, dstService: null, srcIdentity: null, dstIdentity: null, mtls: false,
  });
  r.setByteSource(pair.accepted, 'client');
  pair.accepted.resume();
  pair.client.write(Buffer.alloc(4096));
  const deadline = Date.now() + 5000;
  let received = 0;
  while (Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 60));
    const m = parsePrometheusText(await registry.metrics());
    received = m.samples.find((s) => s.name === 'istio_tcp_received_bytes_total')?.value ?? 0;
    if (received === 4096 && logs.find((l) => l['msg'] === 'connection update').length > 0) break;
  }
  t.is(received, 4096, 'bytes visible before close');
  const upd = logs.find((l) => l['msg'] === 'connection update')[0]!;
  t.is(upd['bytes_sent'], 4096);
  r.record({ reason: null });
  const m = parsePrometheusText(await registry.metrics());
  t.is(m.samples.find((s) => s.name === 'istio_tcp_received_bytes_total')?.value, 4096, 'no double counting at close');
});
