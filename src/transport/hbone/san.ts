import type { PeerCertificate } from 'node:tls';
import { ProxyError } from '../../errors';
import { SpiffeId } from '../../identity/spiffe';

/** One subjectAltName entry as Node prints it (`URI:spiffe://…`, `DNS:example.com`). */
export interface SanEntry {
  readonly type: string;
  readonly value: string;
}

/**
 * Parses Node's `subjectaltname` string. Entries are separated by `", "`; since Node 17.3
 * (CVE-2021-44533) a value containing a separator or quote is printed as a JSON string, so
 * a quoted value is decoded with JSON.parse instead of being split at its inner commas.
 * Never throws: a malformed tail is dropped, which can only make a certificate match less.
 */
export function parseSubjectAltName(s: string | undefined): SanEntry[] {
  const out: SanEntry[] = [];
  if (!s) return out;
  let i = 0;
  for (let guard = 0; i < s.length && guard < 10_000; guard++) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    const type = s.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        break;
      }
      j = k + 1;
    } else {
      const sep = s.indexOf(', ', j);
      const end = sep < 0 ? s.length : sep;
      value = s.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    const next = s.indexOf(', ', j);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

/** Every URI SAN of a peer certificate, in certificate order. */
export function uriSans(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined | null): string[] {
  const out: string[] = [];
  for (const e of parseSubjectAltName(cert?.subjectaltname)) if (e.type === 'URI') out.push(e.value);
  return out;
}

/** RFC 3986 schemes are case-insensitive: `SPIFFE://…` is a SPIFFE SAN too (and then malformed). */
const SPIFFE_SCHEME = /^spiffe:/i;

/**
 * The one identity a peer certificate names: its only SPIFFE URI SAN, in the strict
 * `spiffe://<td>/ns/<ns>/sa/<sa>` form. A mesh-signed certificate can carry several SPIFFE
 * SANs (a foreign or a second identity first); choosing one would let the order decide
 * which policy applies, so a certificate with none, several, or a malformed one names no
 * identity and is refused (TLS_SPIFFE_SAN). Other URI schemes and DNS/IP SANs are ignored.
 */
export function soleSpiffeIdentity(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined | null, who: string): SpiffeId {
  const sans = uriSans(cert).filter((u) => SPIFFE_SCHEME.test(u));
  if (sans.length !== 1) {
    const found = sans.length === 0 ? 'no SPIFFE URI SAN' : `${sans.length} SPIFFE URI SANs [${sans.join(', ')}]`;
    throw new ProxyError('TLS_SPIFFE_SAN', `${who} certificate carries ${found}; exactly one is required`, { sans });
  }
  const only = sans[0] as string;
  const id = SpiffeId.tryParse(only);
  if (!id) throw new ProxyError('TLS_SPIFFE_SAN', `${who} certificate SAN ${JSON.stringify(only)} is not a workload identity spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, { sans });
  return id;
}
