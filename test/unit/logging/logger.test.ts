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
