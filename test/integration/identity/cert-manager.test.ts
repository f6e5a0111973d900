import test from 'ava';
import { Readiness } from '../../../src/admin/readiness';
import { ProxyError } from '../../../src/errors';
import { SpiffeId } from '../../../src/identity/spiffe';
import { ManualClock, systemClock } from '../../../src/util/clock';
import { parsePrometheusText } from '../../helpers/prom-text';
import { RecordingCaClient, eventually, harness, identityConfig, manager } from './harness';

const APP = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
const DB = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/db');

/** An identity's state as /config_dump shows it (undefined: not tracked). */
function stateIn(m: { dump(): readonly { identity: string; state: string }[] }, id: SpiffeId): string | undefined {
  return m.dump().find((d) => d.identity === id.toString())?.state;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

test('CA down at start, then up: the manager becomes available by itself and readiness completes', async (t) => {
  const h = await harness(t);
  const address = h.ca.address;
  const config = identityConfig(h.ca);
  await h.ca.close();
  const { manager: m, logs, registry } = manager(t, config, systemClock, { backoffMs: 100 });
  const readiness = new Readiness();
  const done = readiness.register('certificates');
  let ready = false;
  void m.waitForIdentities([APP, DB]).then(() => {
    ready = true;
    done();
  });
  m.syncLocalIdentities([APP, DB]);
  t.true(await eventually(() => logs.find((l) => l['msg'] === 'workload certificate fetch failed').length >= 2, 5000));
  const fail = logs.find((l) => l['msg'] === 'workload certificate fetch failed')[0]!;
  t.is(fail['level'], 'warn');
  t.is(fail['reason'], 'CA_UNREACHABLE');
  t.regex(String(fail['hint']), /CA_ADDRESS/);
  t.true(fail['identity'] === APP.toString() || fail['identity'] === DB.toString());
  t.is(stateIn(m, APP), 'unavailable');
  t.false(readiness.isReady());
  t.deepEqual(readiness.pendingTasks(), ['certificates']);
  const err = await t.throwsAsync(m.fetchCertificate(APP));
  t.is((err as ProxyError).reason, 'CA_UNREACHABLE');

  await h.startCa({ listenAddr: { host: '127.0.0.1', port: portOf(address) } });
  t.true(await eventually(() => ready, 10_000), 'readiness wait resolved after the CA came up');
  t.true(readiness.isReady());
  t.is(stateIn(m, APP), 'available');
  t.is((await m.fetchCertificate(APP)).identity.toString(), APP.toString());
  const metrics = parsePrometheusText(await registry.metrics());
  const failures = metrics.samples.find((s) => s.name === 'ztunnel_ts_certificate_fetch_total' && s.labels['result'] === 'failure');
  t.is(failures?.labels['reason'], 'CA_UNREACHABLE');
  t.true((failures?.value ?? 0) >= 2);
  const ok = metrics.samples.find((s) => s.name === 'ztunnel_ts_certificate_fetch_total' && s.labels['result'] === 'success');
  t.is(ok?.value, 2);
  t.is(ok?.labels['reason'], '-');
});

test('CA down during refresh: the old certificate serves until expiry, then fails closed, then recovers alone', async (t) => {
  // The CA issues on the same manual clock, so certificates are valid in manual time.
  const clock = new ManualClock(Date.now());
  const h = await harness(t, { clock });
  const address = h.ca.address;
  const { manager: m, logs, registry } = manager(t, identityConfig(h.ca, { secretTtl: 3600_000 }), clock, { backoffMs: 1000 });
  const first = await m.fetchCertificate(APP);
  await h.ca.close();
  clock.advance(31 * 60_000); // past notBefore + 50%: a background refresh starts
  t.true(await eventually(() => logs.find((l) => l['msg'] === 'workload certificate fetch failed').length === 1));
  const fail = logs.find((l) => l['msg'] === 'workload certificate fetch failed')[0]!;
  t.is(fail['reason'], 'CA_UNREACHABLE');
  t.is(fail['servingUntil'], new Date(first.notAfter).toISOString());
  t.is(m.findCertificate(APP), first, 'old certificate keeps serving');
  t.is(await m.fetchCertificate(APP), first);
  t.is(stateIn(m, APP), 'available');
  const gauge = parsePrometheusText(await registry.metrics()).samples.find((s) => s.name === 'ztunnel_ts_certificate_expiry_seconds');
  t.is(gauge?.labels['identity'], APP.toString());
  t.true(Math.abs((gauge?.value ?? 0) - (first.notAfter - clock.now()) / 1000) <= 1);

  // Step past notAfter, letting each backoff retry fail on the way.
  for (let i = 0; i < 40 && clock.now() < first.notAfter + 1000; i++) {
    const failures = logs.find((l) => l['msg'] === 'workload certificate fetch failed').length;
    clock.advance(60_000);
    // A retry that is due fails at once (the CA port refuses); when none is due there is nothing to wait for.
    await eventually(() => logs.find((l) => l['msg'] === 'workload certificate fetch failed').length > failures, 300);
  }
  t.true(clock.now() > first.notAfter);
  t.is(m.findCertificate(APP), undefined, 'no certificate after expiry');
  t.is(stateIn(m, APP), 'unavailable');
  const err = (await t.throwsAsync(m.fetchCertificate(APP))) as ProxyError;
  t.true(err instanceof ProxyError);
  t.true(['CERT_EXPIRED', 'CA_UNREACHABLE'].includes(err.reason), err.reason);
  t.true(logs.find((l) => l['msg'] === 'workload certificate expired without replacement').length === 1);
  t.is(m.dump()[0]!.state, 'unavailable');
  t.is(parsePrometheusText(await registry.metrics()).samples.filter((s) => s.name === 'ztunnel_ts_certificate_expiry_seconds').length, 0);

  await h.startCa({ listenAddr: { host: '127.0.0.1', port: portOf(address) } });
  for (let i = 0; i < 200 && stateIn(m, APP) !== 'available'; i++) {
    clock.advance(10_000);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.is(stateIn(m, APP), 'available', 'recovered on its own once the CA is back');
  t.not(m.findCertificate(APP)?.serialNumber, first.serialNumber);
});

test('waypoint mode requests its own identity without impersonation', async (t) => {
  const h = await harness(t);
  const { manager: m } = manager(t, identityConfig(h.ca, { authToken: 'app-token' }), systemClock, { mode: 'waypoint' });
  const cert = await m.fetchCertificate(APP);
  t.is(cert.identity.toString(), APP.toString());
  const line = h.caLogs.find((l) => l['msg'] === 'issued certificate')[0]!;
  t.is(line['impersonated'], false);
  t.is(line['caller'], 'default/app@node-a');
});

test('single fetch in flight per identity; forget drops the entry and its expiry gauge', async (t) => {
  const h = await harness(t);
  const { manager: m, registry } = manager(t, identityConfig(h.ca), systemClock);
  const all = await Promise.all(Array.from({ length: 10 }, () => m.fetchCertificate(DB)));
  t.true(all.every((c) => c === all[0]), 'ten concurrent callers share one certificate');
  t.is(h.ca.stats().issued, 1);
  t.regex(await registry.metrics(), /ztunnel_ts_certificate_expiry_seconds\{identity="spiffe:\/\/cluster.local\/ns\/default\/sa\/db"\}/);
  m.syncLocalIdentities([DB]);
  m.syncLocalIdentities([]);
  t.is(stateIn(m, DB), undefined);
  t.notRegex(await registry.metrics(), /ztunnel_ts_certificate_expiry_seconds\{/);
});

test('priority and the 8-CSR cap: a realtime request overtakes queued warmups (slow real CA)', async (t) => {
  const extra = Array.from({ length: 17 }, (_, i) => ({ ns: 'load', sa: `sa-${i}` }));
  const h = await harness(t, { issueDelayMs: 150 }, extra);
  const recorder = new RecordingCaClient(identityConfig(h.ca));
  const { manager: m } = manager(t, identityConfig(h.ca), systemClock, { caClient: recorder });
  const warm = extra.slice(0, 16).map((e) => SpiffeId.of('cluster.local', e.ns, e.sa));
  const urgent = SpiffeId.of('cluster.local', 'load', 'sa-16');
  const ready = m.waitForIdentities(warm);
  t.true(await eventually(() => recorder.started.length === 8, 5000), 'eight CSRs start at once');
  t.is(recorder.started.length, 8, 'the other eight wait in the queue');
  const started = Date.now();
  const cert = await m.fetchCertificate(urgent, 'realtime');
  t.log(`realtime fetch behind 8 in-flight CSRs took ${Date.now() - started} ms`);
  t.is(cert.identity.toString(), urgent.toString());
  await ready;
  const s = h.ca.stats();
  t.is(s.issued, 17);
  t.is(s.maxInFlight, 8, 'never more than 8 CSRs at the CA at once');
  t.is(recorder.started.indexOf(urgent.toString()), 8, 'realtime request started first once one of the initial 8 finished');
  t.true(s.arrivals.indexOf(urgent.toString()) >= 8 && s.arrivals.indexOf(urgent.toString()) < 12, 'and reached the CA ahead of the queued warmups');
});

test('measured: CSR + issue latency per certificate, sequential and with 8 in parallel', async (t) => {
  const extra = Array.from({ length: 61 }, (_, i) => ({ ns: 'perf', sa: `sa-${i}` }));
  const h = await harness(t, {}, extra);
  const { manager: m, logs } = manager(t, identityConfig(h.ca), systemClock);
  const ids = extra.map((e) => SpiffeId.of('cluster.local', e.ns, e.sa));
  await m.fetchCertificate(ids[0]!); // channel set-up is not part of the per-certificate cost
  const seq = ids.slice(1, 21);
  const t0 = process.hrtime.bigint();
  const serials = new Set<string>();
  for (const id of seq) serials.add((await m.fetchCertificate(id)).serialNumber);
  const seqMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const par = ids.slice(21);
  const t1 = process.hrtime.bigint();
  await m.waitForIdentities(par);
  const parMs = Number(process.hrtime.bigint() - t1) / 1e6;
  t.is(serials.size, seq.length);
  t.is(h.ca.stats().issued, 61);
  t.is(h.ca.stats().maxInFlight <= 8, true);
  const lat = logs.find((l) => l['msg'] === 'fetched workload certificate').map((l) => Number(l['latencyMs'])).sort((a, b) => a - b);
  t.log(`sequential: ${(seqMs / seq.length).toFixed(1)} ms/cert over ${seq.length}; parallel(8): ${par.length} certs in ${parMs.toFixed(0)} ms = ${(par.length / (parMs / 1000)).toFixed(0)} certs/s; fetch latency p50 ${lat[Math.floor(lat.length / 2)]} ms, max ${lat[lat.length - 1]} ms`);
});

test('reissueAll: every identity gets a new certificate now; the old one serves until the new one arrives', async (t) => {
  const h = await harness(t);
  const { manager: m, logs } = manager(t, identityConfig(h.ca), systemClock);
  const [app0, db0] = await Promise.all([m.fetchCertificate(APP), m.fetchCertificate(DB)]);
  t.is(h.ca.stats().issued, 2);
  t.is(m.reissueAll(), 2);
  // Until the replacement lands, callers still get the current certificate at once.
  t.is(m.findCertificate(APP)?.serialNumber, app0.serialNumber);
  t.true(await eventually(() => m.findCertificate(APP)?.serialNumber !== app0.serialNumber && m.findCertificate(DB)?.serialNumber !== db0.serialNumber, 10_000));
  t.is(h.ca.stats().issued, 4);
  t.is(stateIn(m, APP), 'available');
  t.is(logs.find((l) => l['msg'] === 're-issuing workload certificates on request')[0]?.['identities'], 2);
});
