import test from 'ava';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { StateUpdater } from '../../../src/state/proxy-state';
import { ListenerManager, type AcceptInfo } from '../../../src/proxy/listener-manager';
import { loopbackBlock } from '../../helpers/loopback';
import { workload } from '../../helpers/workloads';
import { waitUntil } from '../../helpers/node-harness';

test('host-less addresses follow local workloads; fixed hosts bind exactly; one bind failure is not fatal', async (t) => {
  const ip = loopbackBlock();
  const logs = new LogCollector();
  const logger = createLogger({ level: 'debug', format: 'json', destination: logs });
  const updater = new StateUpdater(logger);
  const a = workload({ name: 'a', ip: ip(10), node: 'n1' });
  const other = workload({ name: 'other', ip: ip(30), node: 'n2' });
  updater.source('test').replaceAll({ workloads: [a, other], services: [], policies: [] });
  const accepted: AcceptInfo[] = [];
  const lm = new ListenerManager({
    logger,
    state: updater.view,
    nodeName: 'n1',
    specs: [
      { name: 'inbound', addr: { host: null, port: 15008 }, onSocket: (s, i) => { accepted.push(i); s.destroy(); } },
      { name: 'socks5', addr: { host: ip(1), port: 0 }, onSocket: (s) => s.destroy() },
      { name: 'outbound', addr: null, onSocket: (s) => s.destroy() },
    ],
  });
  t.teardown(() => lm.destroy());
  await lm.start();
  const names = () => lm.listeners().map((l) => `${l.name}@${l.address.ip}:${l.address.port}${l.workload ? `(${l.workload})` : ''}`).sort();
  const socksPort = lm.listeners().find((l) => l.name === 'socks5')!.address.port;
  t.deepEqual(names(), [`inbound@${ip(10)}:15008(${a.uid})`, `socks5@${ip(1)}:${socksPort}`]);
  t.true(lm.illegalPorts().has(socksPort));
  t.true(lm.illegalPorts().has(15001));

  const c = connect({ host: ip(10), port: 15008 });
  c.on('error', () => undefined);
  await once(c, 'close');
  t.deepEqual(accepted[0], { listener: 'inbound', bound: { ip: ip(10), port: 15008, family: 4 }, workloadUid: a.uid });

  // A port already taken on one workload IP: logged, the others still bind.
  const blocker = createServer().listen(15008, ip(21));
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const b = workload({ name: 'b', ip: ip(20), node: 'n1' });
  const blocked = workload({ name: 'blocked', ip: ip(21), node: 'n1' });
  updater.source('test').replaceAll({ workloads: [b, blocked, other], services: [], policies: [] });
  const after = [`inbound@${ip(20)}:15008(${b.uid})`, `socks5@${ip(1)}:${socksPort}`];
  const bindFailures = () => logs.find((l) => l['msg'] === 'cannot bind listener for workload; its traffic is not served');
  // The manager follows the state on its own; observe it through its listeners and logs.
  await waitUntil(() => names().join() === after.join() && bindFailures().length > 0, 5000, () => `listeners: ${names().join(', ')}`);
  const err = bindFailures();
  t.is(err.length, 1);
  t.is(err[0]!['workload'], blocked.uid);
  t.is(logs.find((l) => l['msg'] === 'listener closed (workload left this node)').length, 1);
  await lm.close();
  t.deepEqual(lm.listeners(), []);
});

test('a fixed address that cannot be bound fails start with the address in the error', async (t) => {
  const ip = loopbackBlock();
  const logger = createLogger({ level: 'silent', format: 'json', destination: new LogCollector() });
  const blocker = createServer().listen(0, ip(5));
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const lm = new ListenerManager({ logger, state: new StateUpdater().view, nodeName: 'n1', specs: [{ name: 'socks5', addr: { host: ip(5), port }, onSocket: (s) => s.destroy() }] });
  await t.throwsAsync(lm.start(), { message: new RegExp(`cannot bind socks5 ${ip(5).replace(/\./g, '\\.')}:${port}`) });
});
