import test from 'ava';
import { ProxyError } from '../../../src/errors';
import { parseSubjectAltName, soleSpiffeIdentity, uriSans } from '../../../src/transport/hbone/san';

test('parses Node subjectaltname with several entries', (t) => {
  t.deepEqual(parseSubjectAltName('DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:10.0.0.1'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'URI', value: 'spiffe://td/ns/a/sa/b' },
    { type: 'IP Address', value: '10.0.0.1' },
  ]);
});

test('a JSON-quoted value with a comma inside stays one entry (CVE-2021-44533 format)', (t) => {
  const s = 'URI:"spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/x/sa/admin", URI:spiffe://td/ns/c/sa/d';
  t.deepEqual(uriSans({ subjectaltname: s }), ['spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/x/sa/admin', 'spiffe://td/ns/c/sa/d']);
  // The smuggled "admin" identity must not appear as its own SAN: two SPIFFE SANs, refused.
  t.is(t.throws(() => soleSpiffeIdentity({ subjectaltname: s }, 'peer'), { instanceOf: ProxyError })?.reason, 'TLS_SPIFFE_SAN');
});

test('escaped quotes inside a quoted value are decoded', (t) => {
  t.deepEqual(parseSubjectAltName('URI:"a\\"b", DNS:x'), [
    { type: 'URI', value: 'a"b' },
    { type: 'DNS', value: 'x' },
  ]);
});

test('empty, undefined and malformed input never throw', (t) => {
  t.deepEqual(parseSubjectAltName(undefined), []);
  t.deepEqual(parseSubjectAltName(''), []);
  t.deepEqual(parseSubjectAltName('garbage'), []);
  t.deepEqual(parseSubjectAltName('URI:"unterminated'), []);
});

test('the only SPIFFE URI SAN is the identity; other URI schemes and DNS names are ignored', (t) => {
  const id = soleSpiffeIdentity({ subjectaltname: 'DNS:x.example, URI:https://x, URI:spiffe://td/ns/a/sa/b' }, 'peer');
  t.is(id.toString(), 'spiffe://td/ns/a/sa/b');
});

test('none, several (whatever their order or trust domain) or a malformed one: refused with TLS_SPIFFE_SAN', (t) => {
  const refused = (san: string, msg: RegExp): void => {
    const err = t.throws(() => soleSpiffeIdentity({ subjectaltname: san }, 'client 10.0.0.1:5'), { instanceOf: ProxyError });
    t.is(err?.reason, 'TLS_SPIFFE_SAN', san);
    t.regex(err?.message ?? '', msg, san);
  };
  refused('DNS:only.example', /client 10\.0\.0\.1:5 certificate carries no SPIFFE URI SAN/);
  refused('URI:spiffe://evil.local/ns/x/sa/y, URI:spiffe://cluster.local/ns/x/sa/y', /2 SPIFFE URI SANs \[spiffe:\/\/evil\.local\/ns\/x\/sa\/y, spiffe:\/\/cluster\.local\/ns\/x\/sa\/y\]/);
  refused('URI:spiffe://cluster.local/ns/x/sa/y, URI:spiffe://cluster.local/ns/x/sa/y', /2 SPIFFE URI SANs/);
  // A second SAN that is not a strict workload id still counts: it is a SPIFFE SAN.
  refused('URI:spiffe://td/ns/a/sa/b/extra, URI:spiffe://td/ns/a/sa/b', /2 SPIFFE URI SANs/);
  refused('URI:SPIFFE://evil.local/ns/x/sa/y, URI:spiffe://td/ns/a/sa/b', /2 SPIFFE URI SANs/);
  refused('URI:spiffe://td/ns/a/sa/b/extra', /is not a workload identity/);
});
