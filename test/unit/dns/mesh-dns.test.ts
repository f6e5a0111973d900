import test from 'ava';
import { parseMeshDns } from '../../../src/mesh/mesh-dns';

test('the mesh dns section: defaults, records as one address or a list, checks', (t) => {
  const problems: string[] = [];
  const d = parseMeshDns({ records: { 'a.example': '192.0.2.1', 'b.example': ['192.0.2.2', '2001:db8::2'] }, checks: [{ from: '127.0.1.10', query: 'a.example', expect: '192.0.2.1' }] }, problems);
  t.deepEqual(problems, []);
  t.is(d?.port, 15053);
  t.like(d?.upstream, { ip: '127.0.5.53', port: 15353 });
  t.deepEqual(d?.records, { 'a.example': ['192.0.2.1'], 'b.example': ['192.0.2.2', '2001:db8::2'] });
  t.deepEqual(d?.checks, [{ name: 'a.example A', from: '127.0.1.10', query: 'a.example', type: 'A', expect: ['192.0.2.1'], connect: null }]);
  t.is(parseMeshDns(undefined, problems), null);
});

test('every problem of the dns section is named with its path and value', (t) => {
  const problems: string[] = [];
  parseMeshDns({ upstream: '10.0.0.1:53', port: 70000, records: { x: 'nope' }, checks: [{ from: 'x', type: 'MX', expect: 'y' }] }, problems);
  t.deepEqual(problems, [
    'dns.upstream: "10.0.0.1:53" must be a loopback ip:port',
    'dns.port: 70000 is not a port',
    'dns.records.x: "nope" is not an IP address',
    'dns.checks[0].from: "x" is not an IPv4 address',
    'dns.checks[0].query: a name is needed',
    'dns.checks[0].type: must be A or AAAA',
    'dns.checks[0].expect: "y" must be an address or a list of addresses',
  ]);
});
