import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { createLogger, formatPlain } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { errorMessage, ProxyError, classifyError } from '../../../src/errors';

test('plain format is `time LEVEL scope msg k=v`, quoting values with spaces', (t) => {
  const line = formatPlain(JSON.stringify({ time: '2026-01-01T00:00:00.000Z', level: 'info', scope: 'access', msg: 'connection complete', 'src.addr': '10.0.0.1:5000', error: 'a b', bytes_sent: 10 }));
  t.is(line, '2026-01-01T00:00:00.000Z  INFO access connection complete src.addr=10.0.0.1:5000 error="a b" bytes_sent=10\n');
  t.is(formatPlain('not json'), 'not json');
});

test('key-like fields are redacted before serialisation', (t) => {
  const logs = new LogCollector();
  const log = createLogger({ level: 'info', format: 'json', destination: logs });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  log.info({ privateKey: pem, cert: { key: pem, serial: '01' }, token: 'abc', authorization: 'Bearer abc' }, 'issued');
  const text = logs.text();
  t.false(text.includes('PRIVATE KEY'));
  t.false(text.includes('abc'));
  t.is((logs.lines[0]!['cert'] as Record<string, unknown>)['serial'], '01');
});

test('errorMessage strips any PEM private key from an error text', (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  t.is(errorMessage(new Error(`bad key ${pem.trim()} here`)), 'bad key [redacted private key] here');
});

test('classifyError walks causes to the ProxyError reason and maps socket codes', (t) => {
  const inner = new ProxyError('DENY', 'denied by ns/p');
  t.is(classifyError(new Error('wrapped', { cause: new Error('mid', { cause: inner }) })), 'DENY');
  t.is(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'CONNECT');
  t.is(classifyError(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'RESET');
  t.is(classifyError(new Error('who knows')), 'INTERNAL');
  t.regex(inner.hint, /AuthorizationPolicy/);
});

test('classifyError maps one errno by the phase it was raised in', (t) => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  // An app that refuses is CONNECT; a peer proxy that refuses or is unreachable is PEER_UNREACHABLE.
  t.is(classifyError(err('ECONNREFUSED'), 'peer-connect'), 'PEER_UNREACHABLE');
  t.is(classifyError(err('EHOSTUNREACH'), 'peer-connect'), 'PEER_UNREACHABLE');
  t.is(classifyError(err('ETIMEDOUT'), 'connect'), 'CONNECT_TIMEOUT');
  t.is(classifyError(err('ETIMEDOUT'), 'peer-connect'), 'NETWORK_POLICY');
  // In the TLS phase anything that ends the handshake is a TLS reason (verify results keep theirs).
  t.is(classifyError(err('ECONNRESET'), 'tls'), 'TLS_FAILURE');
  t.is(classifyError(err('CERT_HAS_EXPIRED'), 'tls'), 'TLS_CERT_EXPIRED');
  t.is(classifyError(new Error('socket hang up'), 'tls'), 'TLS_FAILURE');
  // During the copy every reset-like code is a reset to carry; outside it an h2 stream error is HBONE_RESET.
  for (const c of ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_HTTP2_STREAM_ERROR']) t.is(classifyError(err(c), 'copy'), 'RESET', c);
  t.is(classifyError(err('ERR_HTTP2_STREAM_ERROR')), 'HBONE_RESET');
  t.is(classifyError(err('ECONNREFUSED'), 'copy'), 'CONNECT');
  // A typed reason inside always wins.
  t.is(classifyError(new Error('x', { cause: new ProxyError('DENY', 'no') }), 'peer-connect'), 'DENY');
});
