import test from 'ava';
import { ConfigError } from '../../../src/config/load';
import { loadWaypointConfig } from '../../../src/config/waypoint-config';
import { main } from '../../../src/cli/main';

test('waypoint config: defaults, flags over env, and the cross checks', (t) => {
  const { config } = loadWaypointConfig({ POD_NAMESPACE: 'shop' }, ['--waypoint-for', 'all']);
  t.like(config, { podNamespace: 'shop', serviceAccount: 'waypoint', waypointName: 'waypoint', waypointFor: 'all', waypointConfigPath: null, protocolDetectionTimeout: 1000 });
  t.deepEqual(config.inboundAddr, { host: '::', port: 15008 });
  const err = t.throws(() => loadWaypointConfig({ INBOUND_ADDR: ':15008', ADMIN_ADDR: '0.0.0.0:15000', WAYPOINT_FOR: 'pods' }, []));
  t.true(err instanceof ConfigError);
  t.regex(err!.message, /INBOUND_ADDR.*an address with a host/);
  t.regex(err!.message, /ADMIN_ADDR.*loopback/);
  t.regex(err!.message, /WAYPOINT_FOR.*one of service, workload, all/);
});

test('`ztunnel-ts waypoint --help` documents its settings', async (t) => {
  let out = '';
  const code = await main({ env: {}, argv: ['waypoint', '--help'], stdout: { write: (s: string) => ((out += s), true) } as NodeJS.WritableStream, stderr: { write: () => true } as unknown as NodeJS.WritableStream, onSignal: () => () => undefined });
  t.is(code, 0);
  for (const k of ['WAYPOINT_CONFIG_PATH', 'WAYPOINT_NAME', 'WAYPOINT_FOR', 'INSTANCE_IP', 'SERVICE_ACCOUNT', 'POD_NAMESPACE', 'PROTOCOL_DETECTION_TIMEOUT', 'LOCAL_XDS_PATH', 'CA_ADDRESS']) t.true(out.includes(k), k);
});
