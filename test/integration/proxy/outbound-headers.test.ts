import test from 'ava';
import { buildOutboundHeaders, buildBaggage, newTraceparent } from '../../../src/proxy/outbound-headers';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { workload, service } from '../../helpers/workloads';

test('CONNECT headers: baggage (non-empty members only), forwarded with client and service host, fresh traceparent', (t) => {
  const w = workload({ name: 'client', ip: '127.0.0.10', node: 'n1', workloadName: 'client-deploy', canonicalName: 'client', canonicalRevision: 'v7', clusterId: 'c1' });
  const h = buildOutboundHeaders(w, makeSocketAddr('127.0.0.10', 41000), service({ name: 'echo', vip: '10.96.0.1', ports: { 80: 8080 } }));
  t.is(h['baggage'], 'k8s.cluster.name=c1,k8s.namespace.name=default,k8s.deployment.name=client-deploy,service.name=client,service.version=v7');
  t.is(h['forwarded'], 'for="127.0.0.10:41000";host=echo.default.svc.cluster.local');
  t.regex(h['traceparent']!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  t.not(newTraceparent(), newTraceparent());
  t.is(buildBaggage({ ...w, clusterId: '', canonicalRevision: '' }), 'k8s.namespace.name=default,k8s.deployment.name=client-deploy,service.name=client');
  const v6 = buildOutboundHeaders(w, makeSocketAddr('::1', 5), null);
  t.is(v6['forwarded'], 'for="[::1]:5"');
});
