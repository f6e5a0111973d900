import test from 'ava';
import { ConfigError } from '../../../src/config/load';
import { loadNodeConfig } from '../../../src/config/node-config';

test('XDS_ADDRESS defaults to istiod in Kubernetes and is off elsewhere; https:// is optional', (t) => {
  t.is(loadNodeConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, []).config.xdsAddress, 'https://istiod.istio-system.svc:15012');
  t.is(loadNodeConfig({}, []).config.xdsAddress, null);
  t.is(loadNodeConfig({ XDS_ADDRESS: 'istiod.istio-system.svc:15012' }, []).config.xdsAddress, 'istiod.istio-system.svc:15012');
  t.is(loadNodeConfig({ KUBERNETES_SERVICE_HOST: 'x', XDS_ADDRESS: '' }, []).config.xdsAddress, null);
});

test('prefix families: XDS_HEADER_<NAME>, ISTIO_META_<NAME>, ISTIO_METAJSON_<NAME>', (t) => {
  const { config } = loadNodeConfig(
    { XDS_HEADER_X_TENANT: 'blue', XDS_HEADER_Authority_Hint: 'a.b', ISTIO_META_CLUSTER_ID: 'c1', ISTIO_META_DNS_CAPTURE: 'true', ISTIO_METAJSON_LABELS: '{"app":"x","n":2}' },
    [],
  );
  t.deepEqual(config.xdsHeaders, [['authority_hint', 'a.b'], ['x_tenant', 'blue']]);
  t.deepEqual(config.proxyMetadata, { CLUSTER_ID: 'c1', DNS_CAPTURE: 'true' });
  t.deepEqual(config.proxyMetadataJson, { LABELS: { app: 'x', n: 2 } });
  t.is(config.clusterId, 'c1', 'ISTIO_META_CLUSTER_ID wins for CLUSTER_ID');
});

test('bad prefix-family values are reported with the env var that holds them', (t) => {
  const err = t.throws(() => loadNodeConfig({ ISTIO_METAJSON_LABELS: '{not json', XDS_HEADER_BAD: 'caf\u00e9' }, []), { instanceOf: ConfigError }) as ConfigError;
  const text = err.issues.map((i) => i.expected).join('\n');
  t.regex(text, /ISTIO_METAJSON_LABELS: a JSON value/);
  t.regex(text, /XDS_HEADER_BAD: a value of printable ASCII/);
});
