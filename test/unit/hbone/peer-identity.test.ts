import test from 'ava';
import type { PeerCertificate } from 'node:tls';
import { checkPeerIdentity, type VerifiedPeer } from '../../../src/transport/hbone/tls';
import { makeSocketAddr } from '../../../src/util/socket-addr';

const HOP = makeSocketAddr('10.0.0.9', 15008);
const EXPECTED = ['spiffe://cluster.local/ns/a/sa/server'];
const cert = (subjectaltname: string): PeerCertificate => ({ subjectaltname }) as PeerCertificate;

function check(san: string, expected: readonly string[] = EXPECTED): { reason: string | null; identity: string | null } {
  const verified: VerifiedPeer = { identity: null };
  const err = checkPeerIdentity(cert(san), expected, HOP, verified);
  return { reason: err?.reason ?? null, identity: verified.identity?.toString() ?? null };
}

// The client side of the handshake: the server's only SPIFFE SAN must be an expected identity.
test('the one SPIFFE SAN equal to an expected identity is accepted and becomes the peer identity', (t) => {
  t.deepEqual(check('DNS:x.example, URI:spiffe://cluster.local/ns/a/sa/server'), { reason: null, identity: EXPECTED[0]! });
});

test('an expected identity next to another SPIFFE SAN is refused, whichever comes first; nothing is verified', (t) => {
  t.deepEqual(check('URI:spiffe://cluster.local/ns/a/sa/server, URI:spiffe://evil.local/ns/a/sa/server'), { reason: 'TLS_SPIFFE_SAN', identity: null });
  t.deepEqual(check('URI:spiffe://evil.local/ns/a/sa/server, URI:spiffe://cluster.local/ns/a/sa/server'), { reason: 'TLS_SPIFFE_SAN', identity: null });
  t.deepEqual(check('DNS:only.example'), { reason: 'TLS_SPIFFE_SAN', identity: null });
});

test('another identity in an expected trust domain is TLS_PEER_IDENTITY; one in another domain is TLS_TRUST_DOMAIN', (t) => {
  t.deepEqual(check('URI:spiffe://cluster.local/ns/a/sa/other'), { reason: 'TLS_PEER_IDENTITY', identity: null });
  t.deepEqual(check('URI:spiffe://evil.local/ns/a/sa/server'), { reason: 'TLS_TRUST_DOMAIN', identity: null });
  t.deepEqual(check('URI:spiffe://evil.local/ns/a/sa/server', [...EXPECTED, 'spiffe://evil.local/ns/a/sa/other']), { reason: 'TLS_PEER_IDENTITY', identity: null });
});
