import test from 'ava';
import { StateUpdater } from '../../../src/state/proxy-state';
import { HostIndex } from '../../../src/dns/host-index';
import { answerFromState, bestService, MESH_TTL_SECONDS, type AnswerSettings, type DnsClient, type LocalAnswer } from '../../../src/dns/answer';
import { svc, wl } from '../state/builders';

const settings: AnswerSettings = { clusterDomain: 'cluster.local', ipv6Enabled: true, preferredNamespace: null };
const client = (namespace = 'ns1', network = 'nw1'): DnsClient => ({ name: 'c', namespace, network, canonicalName: 'c', canonicalRevision: 'v1' });
const noShuffle = (): void => undefined;

function mesh() {
  const u = new StateUpdater();
  u.source('test').applyBatch({
    workloads: {
      upsert: [
        wl('h1', { namespace: 'ns1', workloadIps: ['10.1.0.1', 'fd00::1'], services: { 'ns1/headless.ns1.svc.cluster.local': { 80: 80 } } }),
        wl('h2', { namespace: 'ns1', workloadIps: ['10.1.0.2'], services: { 'ns1/headless.ns1.svc.cluster.local': { 80: 80 } } }),
        wl('vm', { namespace: 'ns2', workloadIps: ['10.9.0.9'], hostname: 'vm1.corp.internal' }),
      ],
    },
    services: {
      upsert: [
        svc('ns1', 'name.ns1.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.1', prefixLen: 32 }, { network: 'nw2', ip: '10.0.0.2', prefixLen: 32 }, { network: 'nw1', ip: 'fd00::10', prefixLen: 128 }] }),
        svc('ns2', 'other.ns2.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.3', prefixLen: 32 }] }),
        svc('ns1', 'headless.ns1.svc.cluster.local'),
        svc('ns1', 'www.example.com', { vips: [{ network: 'nw1', ip: '240.0.0.1', prefixLen: 32 }] }),
        svc('ns1', '*.wild.example.com', { vips: [{ network: 'nw1', ip: '240.0.0.2', prefixLen: 32 }] }),
        svc('ns1', 'v4only.ns1.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.4', prefixLen: 32 }], ipFamilies: 'IPv4' }),
        svc('ns3', 'private.ns3.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.5', prefixLen: 32 }], visibility: 'Namespace' }),
        svc('ns1', 'novip.example.com'),
        svc('ns1', 'cidr.ns1.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.6', prefixLen: 32 }, { network: 'nw1', ip: '10.7.0.0', prefixLen: 16 }] }),
      ],
    },
  });
  return { state: u.view, index: new HostIndex(u.view), updater: u };
}

function ask(name: string, type = 'A', c: DnsClient = client(), s: AnswerSettings = settings): LocalAnswer {
  const m = mesh();
  return answerFromState(m.state, m.index, c, name, type, s, noShuffle);
}

function records(a: LocalAnswer): string[] {
  if (a.kind !== 'answer') return [`forward`];
  return a.records.map((r) => `${r.name} ${r.ttl} ${r.type} ${r.data}`);
}

test('a Service FQDN answers its VIPs on the client network only, TTL 30', (t) => {
  t.deepEqual(records(ask('name.ns1.svc.cluster.local')), [`name.ns1.svc.cluster.local ${MESH_TTL_SECONDS} A 10.0.0.1`]);
  t.deepEqual(records(ask('name.ns1.svc.cluster.local', 'A', client('ns1', 'nw2'))), ['name.ns1.svc.cluster.local 30 A 10.0.0.2']);
  t.deepEqual(records(ask('name.ns1.svc.cluster.local', 'AAAA')), ['name.ns1.svc.cluster.local 30 AAAA fd00::10']);
});

test('the answer keeps the case the client asked with (trailing dot dropped)', (t) => {
  t.deepEqual(records(ask('Name.NS1.svc.cluster.local.')), ['Name.NS1.svc.cluster.local 30 A 10.0.0.1']);
});

test('CIDR VIPs are ranges, not addresses: only host VIPs are answered', (t) => {
  t.deepEqual(records(ask('cidr.ns1.svc.cluster.local')), ['cidr.ns1.svc.cluster.local 30 A 10.0.0.6']);
});

test('a headless Service answers its endpoint IPs (first of the family of each)', (t) => {
  t.deepEqual(records(ask('headless.ns1.svc.cluster.local')).sort(), ['headless.ns1.svc.cluster.local 30 A 10.1.0.1', 'headless.ns1.svc.cluster.local 30 A 10.1.0.2']);
  t.deepEqual(records(ask('headless.ns1.svc.cluster.local', 'AAAA')), ['headless.ns1.svc.cluster.local 30 AAAA fd00::1']);
});

test('short names: name, name.ns and name.ns.svc expand to the Kubernetes FQDN (no CNAME: nothing was stripped)', (t) => {
  t.deepEqual(records(ask('name')), ['name 30 A 10.0.0.1']);
  t.deepEqual(records(ask('other.ns2')), ['other.ns2 30 A 10.0.0.3']);
  t.deepEqual(records(ask('other.ns2.svc')), ['other.ns2.svc 30 A 10.0.0.3']);
  t.deepEqual(records(ask('name', 'A', client('ns2'))), ['forward'], 'a one-label name means the client namespace');
});

test('a search suffix appended by the client resolver is stripped and answered with a CNAME to the real name', (t) => {
  t.deepEqual(records(ask('www.example.com.ns1.svc.cluster.local')), ['www.example.com.ns1.svc.cluster.local 30 CNAME www.example.com', 'www.example.com 30 A 240.0.0.1']);
  t.deepEqual(records(ask('www.example.com.cluster.local')), ['www.example.com.cluster.local 30 CNAME www.example.com', 'www.example.com 30 A 240.0.0.1']);
  // other.ns2 + "svc.cluster.local" search suffix stripped, then expanded: CNAME to the stripped name.
  t.deepEqual(records(ask('other.ns2.ns1.svc.cluster.local')), ['other.ns2.ns1.svc.cluster.local 30 CNAME other.ns2', 'other.ns2 30 A 10.0.0.3']);
});

test('wildcard hosts match every name below them, without a CNAME even when a suffix was stripped', (t) => {
  t.deepEqual(records(ask('api.wild.example.com')), ['api.wild.example.com 30 A 240.0.0.2']);
  t.deepEqual(records(ask('a.b.wild.example.com')), ['a.b.wild.example.com 30 A 240.0.0.2']);
  t.deepEqual(records(ask('api.wild.example.com.ns1.svc.cluster.local')), ['api.wild.example.com.ns1.svc.cluster.local 30 A 240.0.0.2']);
  t.deepEqual(records(ask('wild.example.com')), ['forward'], 'the wildcard does not cover its own base name');
});

test('namespace visibility: a Namespace-visible Service exists only for clients of its namespace', (t) => {
  t.deepEqual(records(ask('private.ns3.svc.cluster.local')), ['forward']);
  t.deepEqual(records(ask('private.ns3.svc.cluster.local', 'A', client('ns3'))), ['private.ns3.svc.cluster.local 30 A 10.0.0.5']);
});

test('a known name without records of the family is an empty authoritative answer, not a forward (no NXDOMAIN)', (t) => {
  const v4only = ask('v4only.ns1.svc.cluster.local', 'AAAA');
  t.is(v4only.kind, 'answer');
  t.deepEqual(records(v4only), []);
  t.is(v4only.kind === 'answer' ? v4only.result : '', 'family not served');
  const noV6 = ask('other.ns2.svc.cluster.local', 'AAAA');
  t.deepEqual(records(noV6), []);
  t.is(noV6.kind === 'answer' ? noV6.result : '', 'no records');
  const off = ask('name.ns1.svc.cluster.local', 'AAAA', client(), { ...settings, ipv6Enabled: false });
  t.deepEqual(records(off), [], 'IPV6_ENABLED=false: AAAA of mesh names is empty');
  t.is(off.kind, 'answer');
});

test('other record types and names outside the mesh are forwarded; a VIP-less non-Kubernetes host is not answered', (t) => {
  t.deepEqual(records(ask('name.ns1.svc.cluster.local', 'TXT')), ['forward']);
  t.deepEqual(records(ask('example.org')), ['forward']);
  t.deepEqual(records(ask('novip.example.com')), ['forward']);
});

test('a workload hostname with addresses is answered with them', (t) => {
  t.deepEqual(records(ask('vm1.corp.internal')), ['vm1.corp.internal 30 A 10.9.0.9']);
});

test('answers are shuffled by the injected shuffle (the server uses a random one)', (t) => {
  const m = mesh();
  const a = answerFromState(m.state, m.index, client(), 'headless.ns1.svc.cluster.local', 'A', settings, (ips) => ips.reverse());
  const b = answerFromState(m.state, m.index, client(), 'headless.ns1.svc.cluster.local', 'A', settings, noShuffle);
  t.deepEqual(records(a), [...records(b)].reverse());
});

test('the index follows state changes', (t) => {
  const m = mesh();
  t.deepEqual(records(answerFromState(m.state, m.index, client(), 'new.ns1.svc.cluster.local', 'A', settings, noShuffle)), ['forward']);
  m.updater.source('test').applyBatch({ services: { upsert: [svc('ns1', 'new.ns1.svc.cluster.local', { vips: [{ network: 'nw1', ip: '10.0.0.9', prefixLen: 32 }] })] } });
  t.deepEqual(records(answerFromState(m.state, m.index, client(), 'new.ns1.svc.cluster.local', 'A', settings, noShuffle)), ['new.ns1.svc.cluster.local 30 A 10.0.0.9']);
});

test('bestService: client namespace, then canonical, then the preferred namespace, then the first', (t) => {
  const a = svc('a', 'h');
  const b = svc('b', 'h', { canonical: true });
  const c = svc('c', 'h');
  t.is(bestService([a, b, c], 'c', 'a'), c);
  t.is(bestService([a, b, c], 'x', 'c'), b);
  t.is(bestService([a, c], 'x', 'c'), c);
  t.is(bestService([a, c], 'x', null), a);
});
