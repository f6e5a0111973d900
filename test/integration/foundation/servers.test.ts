import test from 'ava';
import { connect, createServer } from 'node:net';
import { NodeApp } from '../../../src/app/node-app';
import { loadNodeConfig } from '../../../src/config/node-config';
import { LogCollector } from '../../helpers/log-collector';
import { ListenError } from '../../../src/admin/listen';
import { httpRequest } from '../../helpers/http';
import { parsePrometheusText } from '../../helpers/prom-text';

const BASE = ['--admin-addr', '127.0.0.1:0', '--stats-addr', '127.0.0.1:0', '--readiness-addr', '127.0.0.1:0', '--outbound-addr', '', '--inbound-addr', '', '--inbound-plaintext-addr', '', '--auth-token', 'literal-secret-token'];

function app(extra: string[] = [], logs = new LogCollector()): NodeApp {
  const { config } = loadNodeConfig({}, [...BASE, ...extra]);
  return new NodeApp({ config, logDestination: logs, processMetrics: false });
}

test('/metrics and /stats/prometheus parse as Prometheus text and carry istio_build', async (t) => {
  const a = app();
  const addrs = await a.start();
  t.teardown(() => a.destroy());
  for (const path of ['/metrics', '/stats/prometheus']) {
    const r = await httpRequest(addrs.stats!, path);
    t.is(r.status, 200);
    t.regex(String(r.headers['content-type']), /^text\/plain/);
    const parsed = parsePrometheusText(r.body);
    const build = parsed.samples.find((s) => s.name === 'istio_build');
    t.truthy(build, path);
    t.is(build!.labels['component'], 'ztunnel');
    t.is(build!.value, 1);
    t.is(parsed.types.get('istio_build'), 'gauge');
  }
  t.is((await httpRequest(addrs.stats!, '/nope')).status, 404);
  await a.close();
});

test('process metrics come from the root registry when enabled, never the global default', async (t) => {
  const { config } = loadNodeConfig({}, BASE);
  const a = new NodeApp({ config, logDestination: new LogCollector(), processMetrics: true });
  const b = new NodeApp({ config, logDestination: new LogCollector(), processMetrics: false });
  const text = await a.registry.metrics();
  t.regex(text, /process_cpu_user_seconds_total/);
  t.notRegex(await b.registry.metrics(), /process_cpu_user_seconds_total/);
  const { register } = await import('prom-client');
  t.is(register.getMetricsAsArray().length, 0, 'nothing registered on the global registry');
});

test('readiness answers 500 naming pending tasks, then 200 ready', async (t) => {
  const a = app();
  const addrs = await a.start();
  t.teardown(() => a.destroy());
  const doneCerts = a.runtime.readiness.register('certificates');
  const doneState = a.runtime.readiness.register('state');
  let r = await httpRequest(addrs.readiness!, '/healthz/ready');
  t.is(r.status, 500);
  t.is(r.body, 'not ready, pending: certificates, state\n');
  doneState();
  r = await httpRequest(addrs.readiness!, '/healthz/ready');
  t.is(r.body, 'not ready, pending: certificates\n');
  doneCerts();
  doneCerts();
  r = await httpRequest(addrs.readiness!, '/healthz/ready');
  t.is(r.status, 200);
  t.is(r.body, 'ready\n');
  t.is((await httpRequest(addrs.readiness!, '/healthz/ready', 'POST')).status, 405);
  await a.close();
});

test('admin is bound to loopback only and serves config_dump without secrets, logging and an index', async (t) => {
  const logs = new LogCollector();
  const a = app([], logs);
  const addrs = await a.start();
  t.teardown(() => a.destroy());
  t.is(addrs.admin!.ip, '127.0.0.1');
  // Another loopback address of this host reaches nothing: the socket is bound to 127.0.0.1 only.
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    const s = connect({ host: '127.0.0.2', port: addrs.admin!.port });
    s.on('connect', () => resolve(Object.assign(new Error('connected'), { code: 'CONNECTED' })));
    s.on('error', resolve);
  });
  t.is(err.code, 'ECONNREFUSED');
  const dump = await httpRequest(addrs.admin!, '/config_dump');
  t.is(dump.status, 200);
  const body = JSON.parse(dump.body) as Record<string, any>;
  t.is(body['config'].authToken, '<redacted>');
  t.false(dump.body.includes('literal-secret-token'));
  t.is(body['listeners'].admin, `127.0.0.1:${addrs.admin!.port}`);
  t.regex((await httpRequest(addrs.admin!, '/')).body, /config_dump/);
  t.is((await httpRequest(addrs.admin!, '/logging')).body, 'current log level is info\n');
  t.is((await httpRequest(addrs.admin!, '/logging?level=debug', 'GET')).status, 405);
  const set = await httpRequest(addrs.admin!, '/logging?level=debug', 'POST');
  t.is(set.body, 'current log level is debug\n');
  t.is(a.logger.level, 'debug');
  t.is((await httpRequest(addrs.admin!, '/logging?level=loud', 'POST')).status, 400);
  t.is((await httpRequest(addrs.admin!, '/logging?reset', 'POST')).body, 'current log level is info\n');
  t.is((await httpRequest(addrs.admin!, '/quitquitquit', 'GET')).status, 405);
  t.is((await httpRequest(addrs.admin!, '/missing')).status, 404);
  t.false(logs.text().includes('literal-secret-token'));
  await a.close();
});

test('start-up fails on a bound port with a message naming the address and the cause', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const a = app(['--stats-addr', `127.0.0.1:${port}`]);
  const err = await t.throwsAsync(a.start(), { instanceOf: ListenError });
  t.is(err!.message, `cannot bind stats listener on 127.0.0.1:${port}: address already in use`);
  // Everything bound before the failure was released again.
  const addrs = a.runtime.currentAddresses();
  t.truthy(addrs.readiness);
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(addrs.readiness!.port, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((r) => probe.close(() => r()));
});
