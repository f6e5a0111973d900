import { isIP } from 'node:net';

/**
 * The IP helpers: parsing to bytes, the one canonical text form, loopback, CIDRs. Addresses are compared as canonical
 * strings (v4-mapped IPv6 folded to IPv4, IPv6 fully compressed and lower-case), so two
 * spellings of one address always hit the same index key and CIDR test.
 */

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** 4 or 16 bytes, or null if `s` is not an IP literal. IPv4-mapped IPv6 gives the 4 IPv4 bytes. */
export function ipBytes(s: string): Uint8Array | null {
  const v4 = parseV4(s);
  if (v4) return v4;
  const m = V4_MAPPED.exec(s);
  const c = m ? (m[1] as string) : s;
  const fam = isIP(c);
  if (fam === 4) return Uint8Array.from(c.split('.').map(Number));
  if (fam !== 6) return null;
  return v6Bytes(c);
}

/** Strict dotted-quad parser without regex or intermediate arrays (authorization runs it per CIDR). */
function parseV4(s: string): Uint8Array | null {
  const n = s.length;
  if (n < 7 || n > 15) return null;
  const out = new Uint8Array(4);
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part === 3) return null;
      out[part++] = val;
      val = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && val === 0) return null; // leading zero
      val = val * 10 + (c - 48);
      if (++digits > 3 || val > 255) return null;
    } else return null;
  }
  if (part !== 3 || digits === 0) return null;
  out[3] = val;
  return out;
}

function v6Bytes(s: string): Uint8Array | null {
  let head = s;
  let tailV4: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tailV4 = s.slice(lastColon + 1).split('.').map(Number);
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.includes('::') ? (head.split('::') as [string, string]) : [head, null];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const l = parse(left);
  const r = right === null ? [] : parse(right);
  const fill = right === null ? 0 : 8 - l.length - r.length;
  const groups = [...l, ...new Array<number>(fill).fill(0), ...r];
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tailV4.length === 4) out.set(tailV4, 12);
  return out;
}

/**
 * The one canonical text form of an IP (index keys, SocketAddr, comparisons): IPv4-mapped
 * IPv6 folded to IPv4, IPv6 lower-case and RFC 5952 compressed. Null if `s` is not an IP.
 */
export function canonicalIp(s: string): string | null {
  // Fast path for the common case: a dotted-quad that Node accepts is already canonical.
  if (isIP(s) === 4) return s;
  const b = ipBytes(s);
  if (!b) return null;
  if (b.length === 4) return b.join('.');
  // v4-mapped folded above by ipBytes; format RFC 5952 style (longest zero run compressed).
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function isLoopback(ip: string): boolean {
  const b = ipBytes(ip);
  if (!b) return false;
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i === 15 ? x === 1 : x === 0));
}

/** Parses `ip/len` or a bare ip (full length). Returns an error message naming the input on failure. */
export function parseCidr(s: string): { ok: true; ip: string; prefixLen: number } | { ok: false; message: string } {
  const slash = s.indexOf('/');
  const ipPart = slash < 0 ? s : s.slice(0, slash);
  const ip = canonicalIp(ipPart);
  if (ip === null) return { ok: false, message: `${JSON.stringify(s)} is not an IP address or CIDR (expected e.g. 10.0.0.0/8 or fd00::/64)` };
  const max = ip.includes(':') ? 128 : 32;
  if (slash < 0) return { ok: true, ip, prefixLen: max };
  const lenStr = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenStr) || Number(lenStr) > max) {
    return { ok: false, message: `${JSON.stringify(s)} has an invalid prefix length (expected 0-${max})` };
  }
  return { ok: true, ip, prefixLen: Number(lenStr) };
}

/** True when `ipB` (bytes) lies inside the CIDR `net`/`prefixLen`; families must agree. */
export function bytesInCidr(ipB: Uint8Array, net: Uint8Array, prefixLen: number): boolean {
  if (ipB.length !== net.length) return false;
  const full = prefixLen >> 3;
  for (let i = 0; i < full; i++) if (ipB[i] !== net[i]) return false;
  const rem = prefixLen & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((ipB[full] as number) & mask) === ((net[full] as number) & mask);
}

export function ipInCidr(ip: string, cidr: { ip: string; prefixLen: number }): boolean {
  const a = ipBytes(ip);
  const n = ipBytes(cidr.ip);
  return !!a && !!n && bytesInCidr(a, n, cidr.prefixLen);
}

export function addrKey(network: string, ip: string): string {
  return `${network}/${ip}`;
}
