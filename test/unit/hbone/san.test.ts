import test from 'ava';
import { parseSubjectAltName, spiffeSans, uriSans } from '../../../src/transport/hbone/san';

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
  // The smuggled "admin" identity must not appear as its own SAN.
  t.deepEqual(spiffeSans({ subjectaltname: s }).map(String), ['spiffe://td/ns/c/sa/d']);
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

test('only strict SPIFFE workload IDs count as identities', (t) => {
  const ids = spiffeSans({ subjectaltname: 'URI:spiffe://td/ns/a/sa/b/extra, URI:https://x, URI:spiffe://td/ns/a/sa/b' });
  t.deepEqual(ids.map(String), ['spiffe://td/ns/a/sa/b']);
});
