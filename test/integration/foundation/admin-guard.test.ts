import test from 'ava';
import { NodeApp } from '../../../src/app/node-app';
import { loadNodeConfig } from '../../../src/config/node-config';
import { LogCollector } from '../../helpers/log-collector';
import { isLocalHostHeader } from '../../../src/admin/admin-server';
import { httpRequest } from '../../helpers/http';

const BASE = ['--admin-addr', '127.0.0.1:0', '--stats-addr', '127.0.0.1:0', '--readiness-addr', '127.0.0.1:0', '--outbound-addr', '', '--inbound-addr', '', '--inbound-plaintext-addr', '', '--auth-token', 'literal'];

async function app(t: import('ava').ExecutionContext): Promise<{ a: NodeApp; admin: NonNullable<Awaited<ReturnType<NodeApp['start']>>['admin']>; logs: LogCollector }> {
  const logs = new LogCollector();
  const { config } = loadNodeConfig({}, BASE);
  const a = new NodeApp({ config, logDestination: logs, processMetrics: false });
  const addrs = await a.start();
  t.teardown(() => a.destroy());
  return { a, admin: addrs.admin!, logs };
}

test('Host values that name the loopback itself', (t) => {
  for (const h of ['127.0.0.1:15000', '127.0.0.1', 'localhost:15000', 'LOCALHOST', '[::1]:15000', '[::1]', '127.1.2.3:80']) t.true(isLocalHostHeader(h), h);
  for (const h of [undefined, '', 'evil.example:15000', 'localhost.evil.example', '10.0.0.1:15000', '[::2]:15000', '0.0.0.0:15000']) t.false(isLocalHostHeader(h), String(h));
});

test('POST admin endpoints refuse a Host that is not loopback (DNS rebinding) and act on a loopback one', async (t) => {
  const { a, admin, logs } = await app(t);
  const rebound = { host: 'attacker.example:15000' };
  for (const path of ['/logging?level=debug', '/certificates/reissue', '/quitquitquit']) {
    const r = await httpRequest(admin, path, 'POST', 5000, rebound);
    t.is(r.status, 403, path);
    t.regex(r.body, /not a loopback address or localhost/);
  }
  t.is(a.logger.level, 'info', 'the refused /logging changed nothing');
  t.is(logs.find((l) => l['msg'] === 'admin request refused: Host is not a loopback address or localhost').length, 3);
  // GET stays readable from any Host (read-only, and what tooling port-forwards to).
  t.is((await httpRequest(admin, '/logging', 'GET', 5000, rebound)).status, 200);
  t.is((await httpRequest(admin, '/logging?level=debug', 'POST', 5000, { host: 'localhost:15000' })).body, 'current log level is debug\n');
  t.is((await httpRequest(admin, '/certificates/reissue', 'POST')).status, 200, 'Node sends Host 127.0.0.1:<port>');
  await a.close();
});

test('/logging takes the scoped form and maps scopes onto the running loggers', async (t) => {
  const { a, admin } = await app(t);
  const set = await httpRequest(admin, '/logging?level=warn,access=debug,ztunnel::hbone=info', 'POST');
  t.is(set.status, 200);
  t.is(set.body, 'current log level is warn,access=debug,hbone=info\n');
  t.is(a.logger.level, 'warn');
  t.is((await httpRequest(admin, '/logging')).body, 'current log level is warn,access=debug,hbone=info\n');
  const bad = await httpRequest(admin, '/logging?level=info,nosuchscope=debug', 'POST');
  t.is(bad.status, 400);
  t.regex(bad.body, /unknown scope "nosuchscope"; known scopes: .*access.*hbone/);
  t.is((await httpRequest(admin, '/logging?reset', 'POST')).body, 'current log level is info\n');
  await a.close();
});
