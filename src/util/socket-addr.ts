import { isIP } from 'node:net';
import { canonicalIp } from './ip';

/** A concrete socket address: an IP literal and a port. IPv4-mapped IPv6 is canonicalised to IPv4. */
export interface SocketAddr {
  readonly ip: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/**
 * A listener address. `host === null` means "this port on every local workload IP"
 * (ztunnel's per-pod listeners, emulated on loopback); a host binds exactly that.
 */
export interface ListenAddr {
  readonly host: string | null;
  readonly port: number;
}

export function makeSocketAddr(ip: string, port: number): SocketAddr {
  const c = canonicalIp(ip);
  if (c === null) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
  const fam = c.includes(':') ? 6 : 4;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port out of range: ${port}`);
  return { ip: c, port, family: fam };
}

/** Formats `ip:port`, bracketing IPv6 as HTTP authorities and ztunnel logs do. */
export function formatSocketAddr(a: { ip: string; port: number }): string {
  return a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/**
 * Parses `ip:port` or `[v6]:port`. Returns null for anything else (hostnames included),
 * so callers decide how to report the bad value.
 */
export function parseSocketAddr(s: string): SocketAddr | null {
  const parsed = splitHostPort(s);
  if (!parsed || parsed.host === '' || isIP(parsed.host) === 0) return null;
  if (parsed.port < 1 || parsed.port > 65535) return null;
  return makeSocketAddr(parsed.host, parsed.port);
}

/** Parses a listener address: `:15008`, `0.0.0.0:15001`, `[::]:15020`, `localhost:15000`, port 0 allowed. */
export function parseListenAddr(s: string): ListenAddr | null {
  const parsed = splitHostPort(s);
  if (!parsed) return null;
  if (parsed.port < 0 || parsed.port > 65535) return null;
  if (parsed.host === '') return { host: null, port: parsed.port };
  if (parsed.host !== 'localhost' && isIP(parsed.host) === 0) return null;
  return { host: parsed.host, port: parsed.port };
}

export function formatListenAddr(a: ListenAddr): string {
  if (a.host === null) return `:${a.port}`;
  return formatSocketAddr({ ip: a.host, port: a.port });
}

/**
 * Splits `host:port` or `[v6]:port` (port digits only, range not checked; an unbracketed
 * IPv6 literal is refused as ambiguous). The one host:port parser: addresses, listener
 * addresses, HBONE authorities and config all go through it.
 */
export function splitHostPort(s: string): { host: string; port: number } | null {
  let host: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return null;
    host = s.slice(1, end);
    portStr = s.slice(end + 2);
  } else {
    const idx = s.lastIndexOf(':');
    if (idx < 0) return null;
    host = s.slice(0, idx);
    if (host.includes(':')) return null; // unbracketed IPv6 is ambiguous
    portStr = s.slice(idx + 1);
  }
  if (!/^\d{1,5}$/.test(portStr)) return null;
  return { host, port: Number(portStr) };
}
