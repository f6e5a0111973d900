import test from 'ava';
import { REASONS, classifyError, type Reason } from '../../../src/errors';
import { tlsError } from '../../../src/transport/hbone/tls';

const withCode = (code: string): Error => Object.assign(new Error(`verify failed: ${code}`), { code });

// OpenSSL's verify results are mapped in classifyError only; the TLS layer keeps that reason.
test('certificate verify results map to their own TLS reason; other SSL errors stay TLS_FAILURE', (t) => {
  const cases: Record<string, Reason> = {
    CERT_HAS_EXPIRED: 'TLS_CERT_EXPIRED',
    CERT_NOT_YET_VALID: 'TLS_CERT_NOT_YET_VALID',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS_UNKNOWN_ISSUER',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS_UNKNOWN_ISSUER',
    UNABLE_TO_GET_ISSUER_CERT: 'TLS_UNKNOWN_ISSUER',
    SELF_SIGNED_CERT_IN_CHAIN: 'TLS_UNTRUSTED',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS_UNTRUSTED',
    CERT_SIGNATURE_FAILURE: 'TLS_UNTRUSTED',
    INVALID_CA: 'TLS_UNTRUSTED',
    ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'TLS_NO_CLIENT_CERT',
    ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'TLS_NO_CLIENT_CERT',
    ERR_SSL_WRONG_VERSION_NUMBER: 'TLS_FAILURE',
    ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'TLS_FAILURE',
  };
  for (const [code, reason] of Object.entries(cases)) {
    t.is(classifyError(withCode(code)), reason, code);
    t.is(tlsError(withCode(code), '10.0.0.1:15008', 'client').reason, reason, `tlsError ${code}`);
    t.is(REASONS[reason].flag, 'TLS_FAILURE', `${reason} is a TLS_FAILURE flag`);
  }
});

test('a non-TLS error during the handshake is still a TLS failure there (not RESET or INTERNAL)', (t) => {
  t.is(tlsError(withCode('ECONNRESET'), '10.0.0.1:15008', 'server').reason, 'TLS_FAILURE');
  t.is(tlsError(new Error('odd'), '10.0.0.1:15008', 'server').reason, 'TLS_FAILURE');
  const e = tlsError(withCode('CERT_HAS_EXPIRED'), '10.0.0.1:15008', 'client');
  t.regex(e.message, /TLS handshake with 10\.0\.0\.1:15008 failed: CERT_HAS_EXPIRED: .*\(server certificate of 10\.0\.0\.1:15008 rejected\)/);
});
