import test from 'ava';
import { loadConfig, ConfigError } from '../../../src/config/load';
import { NODE_KEYS } from '../../../src/config/keys-node';
import { loadNodeConfig } from '../../../src/config/node-config';
import { parseResolvConf, parseUpstreams } from '../../../src/dns/upstreams';

test('resolv.conf: nameservers in order on port 53; search, options, comments and zone-scoped addresses ignored', (t) => {
  const text = '# generated\nsearch default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver  2001:DB8::53 ; comment\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver bogus\n';
  t.deepEqual(parseResolvConf(text), [
    { ip: '10.96.0.10', port: 53 },
    { ip: '2001:db8::53', port: 53 },
  ]);
});

test('DNS_UPSTREAMS: ip, ip:port, [v6]:port; a bad entry is named', (t) => {
  t.deepEqual(parseUpstreams(['10.0.0.1', '10.0.0.2:5353', '[::1]:53', '::1']), { ok: true, value: [{ ip: '10.0.0.1', port: 53 }, { ip: '10.0.0.2', port: 5353 }, { ip: '::1', port: 53 }, { ip: '::1', port: 53 }] });
  t.deepEqual(parseUpstreams(['10.0.0.1:99999']), { ok: false, bad: '10.0.0.1:99999' });
  const err = t.throws(() => loadConfig(NODE_KEYS, { DNS_UPSTREAMS: '10.0.0.1,dns.example' }, []), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /DNS_UPSTREAMS.*bad entry "dns\.example"/);
});

test('DNS_CAPTURE: off by default, on from the env, the flag or ISTIO_META_DNS_CAPTURE; defaults as ztunnel', (t) => {
  t.false(loadNodeConfig({}, []).config.dnsCapture);
  t.true(loadNodeConfig({ DNS_CAPTURE: 'true' }, []).config.dnsCapture);
  t.true(loadNodeConfig({ ISTIO_META_DNS_CAPTURE: 'true' }, []).config.dnsCapture);
  t.true(loadNodeConfig({}, ['--dns-capture', 'true']).config.dnsCapture);
  const c = loadNodeConfig({}, []).config;
  t.deepEqual(c.dnsProxyAddr, { host: null, port: 15053 });
  t.is(c.dnsForwardTimeout, 5000);
  t.is(c.dnsResolvConf, '/etc/resolv.conf');
  t.is(c.preferedServiceNamespace, null);
});

test('DNS_CAPTURE cannot be combined with XDS_ON_DEMAND (as in ztunnel)', (t) => {
  const err = t.throws(() => loadNodeConfig({ DNS_CAPTURE: 'true', XDS_ON_DEMAND: 'true' }, []), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /DNS_CAPTURE.*XDS_ON_DEMAND/);
});
