import test from 'ava';
import { SpiffeId, SpiffeParseError } from '../../../src/identity/spiffe';

test('parses the canonical shape and formats it back', (t) => {
  const id = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app-1');
  t.is(id.trustDomain, 'cluster.local');
  t.is(id.namespace, 'default');
  t.is(id.serviceAccount, 'app-1');
  t.is(id.toString(), 'spiffe://cluster.local/ns/default/sa/app-1');
  t.is(id.principal(), 'cluster.local/ns/default/sa/app-1');
  t.is(JSON.stringify({ id }), '{"id":"spiffe://cluster.local/ns/default/sa/app-1"}');
  t.is(`${SpiffeId.of('td.example', 'ns1', 'sa.x')}`, 'spiffe://td.example/ns/ns1/sa/sa.x');
});

test('equality is by value; null and undefined are never equal', (t) => {
  const a = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
  t.true(a.equals(SpiffeId.of('cluster.local', 'default', 'app')));
  t.false(a.equals(SpiffeId.of('cluster.local', 'default', 'app2')));
  t.false(a.equals(SpiffeId.of('other.local', 'default', 'app')));
  t.false(a.equals(SpiffeId.of('cluster.local', 'other', 'app')));
  t.false(a.equals(null));
  t.false(a.equals(undefined));
});

const MALFORMED = [
  '',
  'cluster.local/ns/default/sa/app',
  'SPIFFE://cluster.local/ns/default/sa/app',
  'https://cluster.local/ns/default/sa/app',
  'spiffe://',
  'spiffe://cluster.local',
  'spiffe://cluster.local/',
  'spiffe://cluster.local/ns/default',
  'spiffe://cluster.local/ns/default/sa',
  'spiffe://cluster.local/ns/default/sa/',
  'spiffe://cluster.local/ns//sa/app',
  'spiffe:///ns/default/sa/app',
  'spiffe://cluster.local/sa/app/ns/default',
  'spiffe://cluster.local/namespace/default/sa/app',
  'spiffe://cluster.local/ns/default/serviceaccount/app',
  'spiffe://cluster.local/ns/default/sa/app/extra',
  'spiffe://cluster.local/ns/default/sa/app/',
  'spiffe://Cluster.Local/ns/default/sa/app',
  'spiffe://cluster local/ns/default/sa/app',
  'spiffe://cluster.local/ns/def ault/sa/app',
  'spiffe://cluster.local/ns/default/sa/app?x=1',
  'spiffe://cluster.local/ns/default/sa/app#frag',
  'spiffe://user@cluster.local/ns/default/sa/app',
  'spiffe://cluster.local:443/ns/default/sa/app',
  ' spiffe://cluster.local/ns/default/sa/app',
  'spiffe://cluster.local/ns/default/sa/app\n',
  'spiffe://cluster.local/ns/dé/sa/app',
];

for (const input of MALFORMED) {
  test(`rejects ${JSON.stringify(input)} with an error naming the input`, (t) => {
    const err = t.throws(() => SpiffeId.parse(input), { instanceOf: SpiffeParseError });
    t.is(err!.input, input);
    t.true(err!.message.includes(JSON.stringify(input)), err!.message);
    t.is(SpiffeId.tryParse(input), null);
  });
}

test('of() validates its parts like parse()', (t) => {
  t.throws(() => SpiffeId.of('cluster.local', 'a/b', 'x'), { instanceOf: SpiffeParseError });
  t.throws(() => SpiffeId.of('cluster.local', '', 'x'), { instanceOf: SpiffeParseError });
});
