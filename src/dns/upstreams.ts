import { isIP } from 'node:net';
import type { Upstream } from './forwarder';

/**
 * The `nameserver` lines of a resolv.conf, in order, on port 53. The search list and options
 * are ignored on purpose: the proxy forwards names exactly as the client asked them (the
 * client's own resolver already applied its search list). IPv6 zone ids (`fe80::1%eth0`) are
 * dropped with the address, since a forwarded query has no interface to scope it to.
 */
export function parseResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const words = line.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (words[0] !== 'nameserver' || words[1] === undefined) continue;
    const ip = words[1].toLowerCase();
    if (isIP(ip) !== 0 && !ip.includes('%')) out.push({ ip, port: 53 });
  }
  return out;
}

/** DNS_UPSTREAMS entries: `ip`, `ip:port` or `[ipv6]:port`; the error names the bad entry. */
export function parseUpstreams(list: readonly string[]): { ok: true; value: Upstream[] } | { ok: false; bad: string } {
  const out: Upstream[] = [];
  for (const raw of list) {
    const s = raw.trim();
    let ip = s;
    let port = 53;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
    if (v6) {
      ip = v6[1] as string;
      if (v6[2] !== undefined) port = Number(v6[2]);
    } else if (isIP(s) === 0 && s.includes(':')) {
      ip = s.slice(0, s.lastIndexOf(':'));
      port = Number(s.slice(s.lastIndexOf(':') + 1));
    }
    if (isIP(ip) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, bad: raw };
    out.push({ ip: ip.toLowerCase(), port });
  }
  return { ok: true, value: out };
}
