import test from 'ava';
import { loadNodeConfig } from '../../../src/config/node-config';
import { ConfigError, loadConfig } from '../../../src/config/load';
import { NODE_KEYS } from '../../../src/config/keys-node';
import { CA_KEYS } from '../../../src/config/keys-ca';
import { REDIRECT_KEYS } from '../../../src/config/keys-tools';

test('node defaults match ztunnel', (t) => {
  const { config: c } = loadNodeConfig({}, []);
  t.deepEqual(c.adminAddr, { host: '127.0.0.1', port: 15000 });
  t.deepEqual(c.statsAddr, { host: '::', port: 15020 });
  t.deepEqual(c.readinessAddr, { host: '::', port: 15021 });
  t.deepEqual(c.outboundAddr, { host: null, port: 15001 });
  t.deepEqual(c.inboundPlaintextAddr, { host: null, port: 15006 });
  t.deepEqual(c.inboundAddr, { host: null, port: 15008 });
  t.is(c.socks5Addr, null);
  t.is(c.caAddress, 'https://localhost:15012');
  t.is(c.clusterId, 'Kubernetes');
  t.is(c.secretTtl, 24 * 3600 * 1000);
  t.is(c.poolMaxStreams, 100);
  t.is(c.poolUnusedReleaseTimeout, 5 * 60 * 1000);
  t.is(c.terminationDeadline, 5000);
  t.is(c.h2StreamWindow, 4 * 1024 * 1024);
  t.is(c.h2ConnectionWindow, 16 * 1024 * 1024);
  t.is(c.h2FrameSize, 1024 * 1024);
  t.is(c.packetMark, 1337);
  t.is(c.maxControlFrames, 1000);
  t.is(c.maxPreAcceptBytes, 16 * 1024 * 1024);
  t.is(c.localWorkloadWait, 5000);
  t.is(c.logFormat, 'json');
  t.is(c.logLevel, 'info');
});

test('env-dependent defaults: in-cluster CA, cluster id, SOCKS5 switch, grace period', (t) => {
  const { config: c } = loadNodeConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1', ISTIO_META_CLUSTER_ID: 'east', UNSTABLE_ENABLE_SOCKS5: 'true', TERMINATION_GRACE_PERIOD_SECONDS: '30', RUST_LOG: 'debug,ztunnel::proxy=trace' }, []);
  t.is(c.caAddress, 'https://istiod.istio-system.svc:15012');
  t.is(c.clusterId, 'east');
  t.deepEqual(c.socks5Addr, { host: '127.0.0.1', port: 15080 });
  t.is(c.terminationDeadline, 25_000);
  t.is(c.logLevel, 'debug');
  t.is(loadNodeConfig({ TERMINATION_GRACE_PERIOD_SECONDS: '8' }, []).config.terminationDeadline, 7000);
  t.is(loadNodeConfig({ TERMINATION_GRACE_PERIOD_SECONDS: '30', CONNECTION_TERMINATION_DEADLINE: '2s' }, []).config.terminationDeadline, 2000);
});

test('flags override env, both forms of flag are accepted', (t) => {
  const { config: c } = loadNodeConfig({ ADMIN_ADDR: '127.0.0.1:1', SECRET_TTL: '1h' }, ['--admin-addr', '127.0.0.1:0', '--secret-ttl=90m', '--inbound-addr', '0.0.0.0:15008']);
  t.deepEqual(c.adminAddr, { host: '127.0.0.1', port: 0 });
  t.is(c.secretTtl, 90 * 60 * 1000);
  t.deepEqual(c.inboundAddr, { host: '0.0.0.0', port: 15008 });
});

test('every bad key is reported at once, with its value and what was expected', (t) => {
  const err = t.throws(
    () =>
      loadNodeConfig(
        { SECRET_TTL: 'soon', POOL_MAX_STREAMS_PER_CONNECTION: '0', LOG_FORMAT: 'xml', ADMIN_ADDR: '0.0.0.0:15000', STATS_ADDR: 'nohost', LOCAL_XDS_PATH: '/a', LOCAL_XDS: 'workloads: []' },
        ['--bogus-flag', 'x', '--keepalive-enabled=maybe'],
      ),
    { instanceOf: ConfigError },
  );
  const keys = err!.issues.map((i) => i.key).sort();
  t.deepEqual(keys, ['--bogus-flag', '--keepalive-enabled', 'ADMIN_ADDR', 'LOCAL_XDS', 'LOG_FORMAT', 'POOL_MAX_STREAMS_PER_CONNECTION', 'SECRET_TTL', 'STATS_ADDR'].sort());
  const ttl = err!.issues.find((i) => i.key === 'SECRET_TTL')!;
  t.is(ttl.value, 'soon');
  t.regex(ttl.expected, /duration/);
  t.regex(err!.message, /ADMIN_ADDR="0.0.0.0:15000": expected a loopback address/);
});

test('config is deeply frozen', (t) => {
  const { config } = loadNodeConfig({}, []);
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.adminAddr));
  t.throws(() => {
    (config as { poolMaxStreams: number }).poolMaxStreams = 1;
  });
});

test('a secret value is never echoed in an error', (t) => {
  const keys = { token: { ...NODE_KEYS.authToken, parse: () => ({ ok: false as const, expected: 'x' }) } };
  const err = t.throws(() => loadConfig(keys, { AUTH_TOKEN: 'supersecret' }, []), { instanceOf: ConfigError });
  t.false(err!.message.includes('supersecret'));
});

test('CA and redirect key sets parse their own names', (t) => {
  const ca = loadConfig(CA_KEYS, { CA_TRUSTED_NODE_ACCOUNTS: 'istio-system/ztunnel, kube-system/node' }, ['--ca-listen-addr', '127.0.0.1:0']).config;
  t.deepEqual(ca.trustedNodeAccounts, ['istio-system/ztunnel', 'kube-system/node']);
  t.deepEqual(ca.listenAddr, { host: '127.0.0.1', port: 0 });
  const r = loadConfig(REDIRECT_KEYS, { PACKET_MARK: '0x539' }, ['install', '--redirect-dry-run', '--redirect-exclude-ports', '9090,8443']);
  t.true(r.config.dryRun);
  t.is(r.config.packetMark, 0x539);
  t.deepEqual(r.config.excludePorts, [9090, 8443]);
  t.deepEqual(r.positionals, ['install']);
});

test('IPV6_ENABLED=false turns every [::] listen address into 0.0.0.0; true keeps them', (t) => {
  const off = loadNodeConfig({ IPV6_ENABLED: 'false', INBOUND_ADDR: '[::]:15008' }, []).config;
  t.deepEqual(off.statsAddr, { host: '0.0.0.0', port: 15020 });
  t.deepEqual(off.readinessAddr, { host: '0.0.0.0', port: 15021 });
  t.deepEqual(off.inboundAddr, { host: '0.0.0.0', port: 15008 });
  t.deepEqual(off.outboundAddr, { host: null, port: 15001 }, 'host-less addresses are per workload IP, unchanged');
  t.true(Object.isFrozen(off) && Object.isFrozen(off.statsAddr));
  const on = loadNodeConfig({ INBOUND_ADDR: '[::]:15008' }, []).config;
  t.deepEqual(on.statsAddr, { host: '::', port: 15020 });
  t.deepEqual(on.inboundAddr, { host: '::', port: 15008 });
});
