/**
 * The DNS proxy on real sockets, per workload IP on loopback, judged by independent peers:
 * dig as the client and dnsmasq as the upstream nameserver. Mesh names are answered from the
 * state (authoritative, TTL 30), the rest is forwarded unchanged over UDP with TCP fallback;
 * upstream timeouts, malformed and oversized queries and a query flood are survived.
 */
import test from 'ava';
import * as net from 'node:net';
import * as packet from 'dns-packet';
import { once } from 'node:events';
import { StateUpdater } from '../../../src/state/proxy-state';
import { DnsProxy, type DnsProxyOptions } from '../../../src/dns/dns-proxy';
import { createRegistry } from '../../../src/metrics/registry';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { loopbackBlock } from '../../helpers/loopback';
import { parsePrometheusText } from '../../helpers/prom-text';
import { blackholeUdp, dig, startDnsmasq, udpExchange, which } from '../../helpers/dns';
import { svc, wl } from '../../unit/state/builders';

const missing = ['dig', 'dnsmasq'].filter((b) => which(b) === null);
const B = loopbackBlock();
const CLIENT = B(10);
const UPSTREAM = B(53);
const UPSTREAM_PORT = 15353;
const PORT = 15053;
const BIG_TXT = Array.from({ length: 8 }, (_, i) => `"${String(i).repeat(200)}"`).join(',');

/** dns-packet decodes the rcode but its types do not declare it. */
const rcode = (b: Buffer): string => (packet.decode(b) as packet.DecodedPacket & { rcode?: string }).rcode ?? '';

function state() {
  const u = new StateUpdater();
  u.source('test').applyBatch({
    workloads: {
      upsert: [
        wl('c1', { namespace: 'ns1', node: 'n1', workloadIps: [CLIENT], canonicalName: 'client', canonicalRevision: 'v1' }),
        wl('e1', { namespace: 'ns1', node: 'other', workloadIps: ['10.1.0.1'], services: { 'ns1/headless.ns1.svc.cluster.local': { 80: 80 } } }),
        wl('e2', { namespace: 'ns1', node: 'other', workloadIps: ['10.1.0.2'], services: { 'ns1/headless.ns1.svc.cluster.local': { 80: 80 } } }),
      ],
    },
    services: {
      upsert: [
        svc('ns1', 'server.ns1.svc.cluster.local', { vips: [{ network: '', ip: '10.0.0.1', prefixLen: 32 }] }),
        svc('ns1', 'headless.ns1.svc.cluster.local'),
        svc('ns1', 'www.example.com', { vips: [{ network: '', ip: '240.0.0.1', prefixLen: 32 }] }),
        svc('ns1', '*.wild.example.com', { vips: [{ network: '', ip: '240.0.0.2', prefixLen: 32 }] }),
        svc('ns1', 'v4only.ns1.svc.cluster.local', { vips: [{ network: '', ip: '10.0.0.4', prefixLen: 32 }], ipFamilies: 'IPv4' }),
      ],
    },
  });
  return u;
}

function proxy(over: Partial<DnsProxyOptions> = {}): { dns: DnsProxy; logs: LogCollector; metrics: () => Promise<string> } {
  const logs = new LogCollector();
  const registry = createRegistry({ component: 'ztunnel', processMetrics: false });
  const dns = new DnsProxy({
    state: state().view,
    logger: createLogger({ level: 'debug', format: 'json', destination: logs }),
    registry,
    nodeName: 'n1',
    network: '',
    settings: { clusterDomain: 'cluster.local', ipv6Enabled: true, preferredNamespace: null },
    addr: { host: null, port: PORT },
    inpod: false,
    reusePort: false,
    upstreams: [{ ip: UPSTREAM, port: UPSTREAM_PORT }],
    resolvConfPath: '/nonexistent',
    forwardTimeoutMs: 1500,
    ...over,
  });
  return { dns, logs, metrics: () => registry.metrics() };
}

if (missing.length > 0) {
  test('dns proxy (skipped)', (t) => {
    t.log(`skipped: ${missing.join(', ')} not installed (Debian bind9-dnsutils, dnsmasq)`);
    t.pass();
  });
} else {
  let upstream: { stop: () => Promise<void> };
  const main = proxy();
  test.before(async () => {
    upstream = await startDnsmasq(UPSTREAM, UPSTREAM_PORT, ['--address=/external.test/192.0.2.7', `--txt-record=big.test,${BIG_TXT}`]);
    await main.dns.start();
  });
  test.after.always(async () => {
    main.dns.destroy();
    await upstream?.stop();
  });

  test('a Service name is answered from the state: authoritative, TTL 30, its VIP; listeners are per workload IP', async (t) => {
    t.deepEqual(main.dns.listeners().map((l) => `${l.address.ip}:${l.address.port} ${l.workload}`), [`${CLIENT}:${PORT} c1`]);
    const r = await dig(CLIENT, PORT, ['server.ns1.svc.cluster.local', 'A']);
    t.is(r.status, 'NOERROR');
    t.true(r.flags.includes('aa'), r.raw);
    t.deepEqual(r.answers, [{ name: 'server.ns1.svc.cluster.local.', ttl: 30, type: 'A', data: '10.0.0.1' }]);
    const tcp = await dig(CLIENT, PORT, ['+tcp', 'server.ns1.svc.cluster.local', 'A']);
    t.deepEqual(tcp.answers.map((a) => a.data), ['10.0.0.1'], 'the same over TCP');
  });

  test('short names, search suffixes (CNAME), wildcard hosts and headless Services on the wire', async (t) => {
    t.deepEqual((await dig(CLIENT, PORT, ['server.ns1', 'A'])).answers.map((a) => `${a.name} ${a.type} ${a.data}`), ['server.ns1. A 10.0.0.1']);
    t.deepEqual((await dig(CLIENT, PORT, ['server', 'A'])).answers.map((a) => a.data), ['10.0.0.1']);
    t.deepEqual((await dig(CLIENT, PORT, ['www.example.com.ns1.svc.cluster.local', 'A'])).answers.map((a) => `${a.name} ${a.type} ${a.data}`), [
      'www.example.com.ns1.svc.cluster.local. CNAME www.example.com.',
      'www.example.com. A 240.0.0.1',
    ]);
    t.deepEqual((await dig(CLIENT, PORT, ['api.v2.wild.example.com', 'A'])).answers.map((a) => a.data), ['240.0.0.2']);
    t.deepEqual((await dig(CLIENT, PORT, ['headless.ns1.svc.cluster.local', 'A'])).answers.map((a) => a.data).sort(), ['10.1.0.1', '10.1.0.2']);
  });

  test('a known name without records of the family is an empty NOERROR answer; an unknown one is the upstream NXDOMAIN', async (t) => {
    const empty = await dig(CLIENT, PORT, ['v4only.ns1.svc.cluster.local', 'AAAA']);
    t.is(empty.status, 'NOERROR');
    t.true(empty.flags.includes('aa'));
    t.deepEqual(empty.answers, []);
    const nx = await dig(CLIENT, PORT, ['nothing.test', 'A']);
    t.is(nx.status, 'NXDOMAIN', nx.raw);
  });

  test('names outside the mesh are forwarded over UDP and TCP and relayed unchanged', async (t) => {
    const direct = await dig(UPSTREAM, UPSTREAM_PORT, ['external.test', 'A']);
    const udp = await dig(CLIENT, PORT, ['external.test', 'A']);
    t.deepEqual(udp.answers, direct.answers);
    t.deepEqual(udp.answers.map((a) => a.data), ['192.0.2.7']);
    t.deepEqual(udp.flags, direct.flags, 'the upstream flags are relayed (no aa from us)');
    const tcp = await dig(CLIENT, PORT, ['+tcp', 'external.test', 'A']);
    t.deepEqual(tcp.answers, direct.answers);
    const mx = await dig(CLIENT, PORT, ['server.ns1.svc.cluster.local', 'MX']);
    const mxDirect = await dig(UPSTREAM, UPSTREAM_PORT, ['server.ns1.svc.cluster.local', 'MX']);
    t.is(mx.status, mxDirect.status, 'other record types of mesh names are the upstream\'s to answer');
    t.false(mx.flags.includes('aa'));
  });

  test('a truncated upstream UDP answer is fetched again over TCP; a UDP client that cannot take it gets TC', async (t) => {
    // Over TCP to us, no EDNS: the proxy asks upstream over UDP (512 bytes: TC), then over TCP.
    const full = await dig(CLIENT, PORT, ['+tcp', '+noedns', 'big.test', 'TXT']);
    t.is(full.status, 'NOERROR');
    t.is(full.answers.length, 1);
    const direct = await dig(UPSTREAM, UPSTREAM_PORT, ['+tcp', '+noedns', 'big.test', 'TXT']);
    t.deepEqual(full.answers, direct.answers, 'the whole record arrived');
    t.true((full.answers[0]?.data.length ?? 0) > 1600);
    const log = main.logs.find((l) => l['scope'] === 'dns' && l['domain'] === 'big.test' && l['protocol'] === 'tcp');
    t.is(log[0]?.['upstreamTransport'], 'tcp');
    t.is(log[0]?.['tcpFallback'], true);
    // Over UDP without EDNS the 1.6 kB answer does not fit 512 bytes: TC, and dig retries over TCP itself.
    const tc = await dig(CLIENT, PORT, ['+noedns', '+ignore', 'big.test', 'TXT']);
    t.true(tc.flags.includes('tc'), tc.raw);
    const retried = await dig(CLIENT, PORT, ['+noedns', 'big.test', 'TXT']);
    t.is(retried.answers.length, 1);
  });

  test('an upstream that never answers: SERVFAIL after the timeout, counted as ztunnel and by reason', async (t) => {
    const hole = await blackholeUdp(B(54));
    const p = proxy({ addr: { host: B(20), port: 0 }, upstreams: [{ ip: B(54), port: hole.port }], forwardTimeoutMs: 300 });
    await p.dns.start();
    t.teardown(() => {
      p.dns.destroy();
      hole.close();
    });
    const port = p.dns.listeners()[0]?.address.port as number;
    const r = await dig(B(20), port, ['-b', CLIENT, 'slow.test', 'A']);
    t.is(r.status, 'SERVFAIL');
    t.true(hole.received() >= 1);
    const m = parsePrometheusText(await p.metrics());
    const val = (name: string, labels: Record<string, string> = {}): number =>
      m.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    t.is(val('istio_dns_upstream_failures_total', { request_query_type: 'a', request_protocol: 'udp', source_canonical_service: 'client', source_canonical_revision: 'v1' }), 1);
    t.is(val('ztunnel_ts_dns_failures_total', { reason: 'DNS_UPSTREAM_TIMEOUT' }), 1);
    t.is(val('istio_dns_upstream_request_duration_seconds_count'), 1);
    t.is(val('istio_dns_upstream_request_duration_seconds_bucket', { le: '0.1' }), 0, 'the 300 ms wait is in the histogram');
    t.is(val('istio_dns_upstream_request_duration_seconds_bucket', { le: '1' }), 1);
  });

  test('a shared listener tells clients by source address; an unknown source gets SERVFAIL', async (t) => {
    const p = proxy({ addr: { host: B(21), port: 0 } });
    await p.dns.start();
    t.teardown(() => p.dns.destroy());
    const port = p.dns.listeners()[0]?.address.port as number;
    t.deepEqual((await dig(B(21), port, ['-b', CLIENT, 'server', 'A'])).answers.map((a) => a.data), ['10.0.0.1']);
    t.is((await dig(B(21), port, ['-b', B(99), 'server', 'A'])).status, 'SERVFAIL');
    t.is(p.logs.find((l) => l['reason'] === 'DNS_UNKNOWN_CLIENT').length, 1);
  });

  test('malformed, oversized and non-query messages get FORMERR/NOTIMP or are dropped, and the server keeps answering', async (t) => {
    const q = (over: Partial<packet.Packet> = {}): Buffer => packet.encode({ id: 77, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: 'server.ns1.svc.cluster.local' }], ...over });
    const rcodeOf = (b: Buffer | null): string => (b ? rcode(b) : 'dropped');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, Buffer.from('hi'), 300)), 'dropped', 'shorter than a header: no reply possible');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, Buffer.concat([q().subarray(0, 12), Buffer.from([0xff, 0xff, 0xff])]))), 'FORMERR', 'truncated question');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, q({ questions: [] }))), 'FORMERR', 'no question');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, q({ questions: [{ type: 'A', name: 'a.test' }, { type: 'A', name: 'b.test' }] }))), 'FORMERR', 'two questions');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, q({ type: 'response' }))), 'FORMERR', 'a response sent as a query');
    t.is(rcodeOf(await udpExchange(CLIENT, PORT, q({ flags: 2 << 11 }))), 'NOTIMP', 'opcode STATUS');
    const oversized = Buffer.concat([q(), Buffer.alloc(5000)]);
    const over = await udpExchange(CLIENT, PORT, oversized);
    t.is(rcodeOf(over), 'FORMERR', 'oversized query');
    t.is(over?.readUInt16BE(0), 77, 'the error keeps the id');

    // TCP: a length prefix past the limit drops the connection; a good query on a new one works.
    const s = net.connect(PORT, CLIENT);
    await once(s, 'connect');
    s.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
    await once(s, 'close');
    t.pass();
    const ok = await dig(CLIENT, PORT, ['+tcp', 'server.ns1.svc.cluster.local', 'A']);
    t.deepEqual(ok.answers.map((a) => a.data), ['10.0.0.1']);
    t.true(main.logs.find((l) => l['reason'] === 'DNS_MALFORMED').length >= 6);
  });

  test('a query flood towards a silent upstream keeps at most maxInFlight forwards; the rest get SERVFAIL at once, local answers go on', async (t) => {
    const hole = await blackholeUdp(B(55));
    const p = proxy({ addr: { host: B(22), port: 0 }, upstreams: [{ ip: B(55), port: hole.port }], forwardTimeoutMs: 3000, maxInFlight: 20 });
    await p.dns.start();
    t.teardown(() => {
      p.dns.destroy();
      hole.close();
    });
    const port = p.dns.listeners()[0]?.address.port as number;
    const sock = (await import('node:dgram')).createSocket('udp4');
    await new Promise<void>((r) => sock.bind({ address: CLIENT, port: 0 }, () => r()));
    t.teardown(() => sock.close());
    const rcodes = new Map<string, number>();
    sock.on('message', (m) => {
      const r = rcode(m);
      rcodes.set(r, (rcodes.get(r) ?? 0) + 1);
    });
    const N = 2000;
    const started = Date.now();
    let maxSeen = 0;
    const answered = (): number => [...rcodes.values()].reduce((x, y) => x + y, 0);
    // Bursts of 100 (what a socket buffer holds), each sent before any of it is answered.
    for (let i = 0; i < N; i++) {
      sock.send(packet.encode({ id: i, type: 'query', questions: [{ type: 'A', name: `n${i}.flood.test` }] }), port, B(22));
      if (i % 100 === 99) {
        await new Promise((r) => setImmediate(r));
        maxSeen = Math.max(maxSeen, (p.dns.dump() as { forwardsInFlight: number }).forwardsInFlight);
        for (let w = 0; w < 50 && answered() < i + 1 - 20; w++) await new Promise((r) => setTimeout(r, 10));
      }
    }
    t.true(maxSeen <= 20, `in flight ${maxSeen}`);
    t.is(rcodes.get('SERVFAIL'), N - 20, `every query past the 20 in flight got SERVFAIL at once`);
    // Each forward waits 3 s, so the upstream sees at most 20 queries per 3 s of flood.
    t.true(hole.received() <= 20 * Math.ceil((Date.now() - started) / 3000 + 1), `the upstream saw ${hole.received()}: at most the in-flight bound per timeout`);
    const local = await dig(B(22), port, ['-b', CLIENT, 'server', 'A']);
    t.deepEqual(local.answers.map((a) => a.data), ['10.0.0.1'], 'mesh names are answered during the flood');
    const m = parsePrometheusText(await p.metrics());
    t.true(m.samples.some((s) => s.name === 'ztunnel_ts_dns_failures_total' && s.labels['reason'] === 'DNS_OVERLOAD' && s.value >= N - 100));
  });

  test('TCP: pipelined queries on one connection are all answered; connections past the cap are refused; the server keeps serving', async (t) => {
    const p = proxy({ addr: { host: B(23), port: 0 } });
    await p.dns.start();
    t.teardown(() => p.dns.destroy());
    const port = p.dns.listeners()[0]?.address.port as number;
    const s = net.connect({ port, host: B(23), localAddress: CLIENT });
    await once(s, 'connect');
    const N = 40;
    s.write(Buffer.concat(Array.from({ length: N }, (_, i) => packet.streamEncode({ id: 1000 + i, type: 'query', questions: [{ type: 'A', name: i % 2 ? 'server' : 'external.test' }] }))));
    const ids = new Set<number>();
    let buf = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${ids.size} of ${N} answers`)), 5000);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
          const len = buf.readUInt16BE(0);
          const m = packet.decode(buf.subarray(2, len + 2));
          ids.add(m.id ?? -1);
          buf = buf.subarray(len + 2);
        }
        if (ids.size === N) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    t.is(ids.size, N, 'every pipelined query answered once (more than the 16 in flight: reading paused and resumed)');
    s.destroy();

    const conns = await Promise.all(
      Array.from({ length: 80 }, async () => {
        const c = net.connect({ port, host: B(23), localAddress: CLIENT });
        c.on('error', () => undefined);
        c.resume();
        await once(c, 'connect');
        return c;
      }),
    );
    const closedCount = (): number => conns.filter((c) => c.destroyed || c.readableEnded).length;
    for (let i = 0; i < 50 && closedCount() < 80 - 64; i++) await new Promise((r) => setTimeout(r, 50));
    const closedByServer = closedCount();
    t.true(closedByServer >= 80 - 64, `${closedByServer} of 80 connections refused past the cap of 64`);
    for (const c of conns) c.destroy();
    const after = await dig(B(23), port, ['-b', CLIENT, '+tcp', 'server', 'A']);
    t.deepEqual(after.answers.map((a) => a.data), ['10.0.0.1']);
  });

  test('metrics carry ztunnel labels, and every query has one debug line with its decision', async (t) => {
    await dig(CLIENT, PORT, ['server.ns1.svc.cluster.local', 'A']);
    await dig(CLIENT, PORT, ['external.test', 'A']);
    const m = parsePrometheusText(await main.metrics());
    const labels = { request_query_type: 'a', request_protocol: 'udp', source_canonical_service: 'client', source_canonical_revision: 'v1' };
    const find = (name: string): number => m.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    t.true(find('istio_dns_requests_total') >= 2);
    t.true(find('istio_dns_upstream_requests_total') >= 1);
    t.is(m.types.get('istio_dns_upstream_request_duration_seconds'), 'histogram');
    const local = main.logs.find((l) => l['scope'] === 'dns' && l['msg'] === 'dns query' && l['domain'] === 'server.ns1.svc.cluster.local');
    t.true(local.length >= 1);
    t.like(local[0], { level: 'debug', 'src.workload': 'c1', 'src.namespace': 'ns1', query: 'A', result: 'success', endpoints: 1, matched: 'ns1/server.ns1.svc.cluster.local' });
    const fwd = main.logs.find((l) => l['msg'] === 'dns query' && l['domain'] === 'external.test');
    t.like(fwd[0], { result: 'forwarded', upstream: `${UPSTREAM}:${UPSTREAM_PORT}` });
  });
}
