import test from 'ava';
import { SpiffeId } from '../../../src/identity/spiffe';
import { buildConnectHeaders, checkConnectHeaders } from '../../../src/transport/hbone/headers';
import { makeSocketAddr } from '../../../src/util/socket-addr';

const target = {
  nextHop: makeSocketAddr('10.0.0.2', 15008),
  authority: '10.0.0.2:8080',
  expectedIdentities: ['spiffe://td/ns/a/sa/b'],
  srcIdentity: SpiffeId.parse('spiffe://td/ns/c/sa/d'),
  peerUid: 'u',
  headers: { Baggage: 'k8s.namespace.name=c', ':path': '/evil', ':authority': 'attacker:1', forwarded: 'for="10.0.0.1:1234"' },
};

test('CONNECT headers: method + authority, no :path/:scheme, caller pseudo-headers dropped, names lowercased', (t) => {
  t.deepEqual(buildConnectHeaders(target), {
    baggage: 'k8s.namespace.name=c',
    forwarded: 'for="10.0.0.1:1234"',
    ':method': 'CONNECT',
    ':authority': '10.0.0.2:8080',
  });
});

test('checkConnectHeaders accepts ip:port and names the bad value otherwise', (t) => {
  t.deepEqual(checkConnectHeaders({ ':method': 'CONNECT', ':authority': '10.1.2.3:80' }), { ok: true, authority: makeSocketAddr('10.1.2.3', 80) });
  const bad = checkConnectHeaders({ ':method': 'CONNECT', ':authority': 'svc.ns:80' });
  t.false(bad.ok);
  if (!bad.ok) {
    t.is(bad.status, 400);
    t.regex(bad.message, /"svc\.ns:80"/);
  }
});

test('checkConnectHeaders: method and forbidden pseudo-headers', (t) => {
  const r1 = checkConnectHeaders({ ':method': 'GET', ':authority': '10.1.2.3:80' });
  t.deepEqual(r1.ok ? 0 : r1.status, 405);
  for (const h of [':path', ':scheme', ':protocol']) {
    const r = checkConnectHeaders({ ':method': 'CONNECT', ':authority': '10.1.2.3:80', [h]: 'x' });
    t.deepEqual(r.ok ? 0 : r.status, 400, h);
  }
  const r2 = checkConnectHeaders({ ':method': 'CONNECT' });
  t.false(r2.ok);
  for (const a of ['10.1.2.3:0', '10.1.2.3:65536', '10.1.2.3:', ':80', '[::1]80', '10.1.2.3:8o']) {
    t.false(checkConnectHeaders({ ':method': 'CONNECT', ':authority': a }).ok, a);
  }
});
