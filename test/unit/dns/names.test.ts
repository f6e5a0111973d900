import test from 'ava';
import { aliasesOf, canonicalName, hasDomain, kubeFqdns, trimDomain, wildcardsOf } from '../../../src/dns/names';

test('canonicalName lower-cases and drops the trailing dot', (t) => {
  t.is(canonicalName('Server.Default.SVC.cluster.local.'), 'server.default.svc.cluster.local');
});

test('hasDomain / trimDomain need at least one label before the domain', (t) => {
  t.true(hasDomain('name.ns.svc.cluster.local', 'svc.cluster.local'));
  t.false(hasDomain('svc.cluster.local', 'svc.cluster.local'));
  t.false(hasDomain('name.ns.a.different.domain', 'svc.cluster.local'));
  t.false(hasDomain('xsvc.cluster.local', 'svc.cluster.local'));
  t.is(trimDomain('name.ns.svc.cluster.local', 'svc.cluster.local'), 'name.ns');
  t.is(trimDomain('svc.cluster.local', 'svc.cluster.local'), null);
});

test('kubeFqdns expands short names as ztunnel does', (t) => {
  const ns = 'ns1.svc.cluster.local';
  t.deepEqual(kubeFqdns('name', 'cluster.local', ns), ['name.ns1.svc.cluster.local']);
  t.deepEqual(kubeFqdns('name.ns2', 'cluster.local', ns), ['name.ns2.svc.cluster.local', 'name.ns2.ns1.svc.cluster.local']);
  t.deepEqual(kubeFqdns('name.ns2.svc', 'cluster.local', ns), ['name.ns2.svc.cluster.local', 'name.ns2.svc.svc.cluster.local']);
  t.deepEqual(kubeFqdns('a.b.c', 'cluster.local', ns), ['a.b.c.svc.cluster.local']);
  t.deepEqual(kubeFqdns('name.ns2.svc.cluster', 'cluster.local', ns), []);
  t.deepEqual(kubeFqdns('name.ns2.x.svc', 'cluster.local', ns), ['name.ns2.x.svc.cluster.local']);
});

test('aliasesOf: the name, its expansions, then each search suffix stripped (marked) and expanded', (t) => {
  const a = aliasesOf('www.example.com.ns1.svc.cluster.local', 'ns1', 'cluster.local');
  t.deepEqual(a[0], { name: 'www.example.com.ns1.svc.cluster.local', stripped: null });
  t.deepEqual(
    a.slice(1).map((x) => [x.name, x.stripped]),
    [
      ['www.example.com', 'www.example.com'],
      ['www.example.com.svc.cluster.local', 'www.example.com'],
      ['www.example.com.ns1', 'www.example.com.ns1'],
      ['www.example.com.ns1.svc', 'www.example.com.ns1.svc'],
    ],
  );
  t.true(a.some((x) => x.name === 'www.example.com' && x.stripped === 'www.example.com'));
  // Every alias appears once.
  t.is(new Set(a.map((x) => x.name)).size, a.length);
});

test('aliasesOf a short name in the client namespace', (t) => {
  const a = aliasesOf('server', 'default', 'cluster.local');
  t.deepEqual(a, [
    { name: 'server', stripped: null },
    { name: 'server.default.svc.cluster.local', stripped: null },
  ]);
});

test('wildcardsOf: the name, then every covering wildcard from the most specific', (t) => {
  t.deepEqual(wildcardsOf('a.b.example.com'), ['a.b.example.com', '*.b.example.com', '*.example.com', '*.com']);
  t.deepEqual(wildcardsOf('com'), ['com']);
});
