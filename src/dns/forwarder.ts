import * as dgram from 'node:dgram';
import { isIP, Socket } from 'node:net';
import { responseHeader, type Query } from './message';

export interface Upstream {
  readonly ip: string;
  readonly port: number;
}

/**
 * Where upstream sockets come from: in-pod mode makes them inside the pod's namespace with
 * the packet mark (so the pod's DNS redirect skips them and the query leaves as the pod's);
 * elsewhere plain sockets of the node proxy.
 */
export interface UpstreamSockets {
  /** A bound UDP socket of the family (any port). */
  udp(family: 4 | 6): Promise<dgram.Socket>;
  /** An unconnected TCP socket of the family; the forwarder connects it. */
  tcp(family: 4 | 6): Socket;
}

export type ForwardFailure = 'DNS_UPSTREAM_TIMEOUT' | 'DNS_UPSTREAM_UNREACHABLE';

export type ForwardResult =
  | { readonly ok: true; readonly response: Buffer; readonly upstream: Upstream; readonly transport: 'udp' | 'tcp'; readonly tcpFallback: boolean }
  | { readonly ok: false; readonly reason: ForwardFailure; readonly detail: string };

/** The largest TCP response we accept from an upstream (the 16-bit length's limit). */
const MAX_TCP_MESSAGE = 65535;

/**
 * Sends a query the state cannot answer to the node's nameservers, unchanged (same id, same
 * EDNS), and hands back the response bytes unchanged. UDP first, each upstream in order with
 * its own timeout; a truncated UDP answer is asked again over TCP of the same upstream (if
 * that fails the truncated answer is relayed: the client can retry over TCP itself). Each
 * exchange uses a fresh socket with a random source port, connected to the upstream, so only
 * that upstream's datagrams are read, and an answer whose id or QR bit is wrong is ignored
 * (quietly: spoofed or late answers must not flood the log).
 */
export class Forwarder {
  constructor(
    private readonly upstreams: readonly Upstream[],
    private readonly timeoutMs: number,
    private readonly sockets: UpstreamSockets,
  ) {}

  async forward(q: Query, raw: Buffer): Promise<ForwardResult> {
    if (this.upstreams.length === 0) return { ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: 'no upstream nameservers (resolv.conf has none and DNS_UPSTREAMS is empty)' };
    const problems: string[] = [];
    let reason: ForwardFailure = 'DNS_UPSTREAM_UNREACHABLE';
    for (const u of this.upstreams) {
      const r = await this.exchangeUdp(u, q, raw);
      if (r.ok) {
        if (!r.truncated) return { ok: true, response: r.response, upstream: u, transport: 'udp', tcpFallback: false };
        const t = await this.exchangeTcp(u, q, raw);
        return t.ok ? { ok: true, response: t.response, upstream: u, transport: 'tcp', tcpFallback: true } : { ok: true, response: r.response, upstream: u, transport: 'udp', tcpFallback: false };
      }
      problems.push(`${fmt(u)}: ${r.detail}`);
      if (r.reason === 'DNS_UPSTREAM_TIMEOUT') reason = r.reason;
    }
    return { ok: false, reason, detail: problems.join('; ') };
  }

  private async exchangeUdp(u: Upstream, q: Query, raw: Buffer): Promise<{ ok: true; response: Buffer; truncated: boolean } | { ok: false; reason: ForwardFailure; detail: string }> {
    let sock: dgram.Socket;
    try {
      sock = await this.sockets.udp(familyOf(u.ip));
    } catch (err) {
      return { ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: `cannot open a UDP socket: ${(err as Error).message}` };
    }
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: { ok: true; response: Buffer; truncated: boolean } | { ok: false; reason: ForwardFailure; detail: string }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.removeAllListeners('message');
        sock.on('error', () => undefined);
        sock.close();
        resolve(r);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: 'DNS_UPSTREAM_TIMEOUT', detail: `no UDP answer within ${this.timeoutMs}ms` }), this.timeoutMs);
      sock.on('error', (err) => finish({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: `UDP: ${err.message}` }));
      sock.on('message', (msg) => {
        const h = responseHeader(msg);
        if (!h || !h.isResponse || h.id !== q.id) return;
        finish({ ok: true, response: msg, truncated: h.truncated });
      });
      sock.connect(u.port, u.ip, () => {
        if (done) return;
        sock.send(raw, (err) => {
          if (err) finish({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: `UDP send: ${err.message}` });
        });
      });
    });
  }

  private exchangeTcp(u: Upstream, q: Query, raw: Buffer): Promise<{ ok: true; response: Buffer } | { ok: false; reason: ForwardFailure; detail: string }> {
    return new Promise((resolve) => {
      let sock: Socket;
      try {
        sock = this.sockets.tcp(familyOf(u.ip));
      } catch (err) {
        resolve({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: `cannot open a TCP socket: ${(err as Error).message}` });
        return;
      }
      let done = false;
      let buf: Buffer = Buffer.alloc(0);
      const finish = (r: { ok: true; response: Buffer } | { ok: false; reason: ForwardFailure; detail: string }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: 'DNS_UPSTREAM_TIMEOUT', detail: `no TCP answer within ${this.timeoutMs}ms` }), this.timeoutMs);
      sock.on('error', (err) => finish({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: `TCP: ${err.message}` }));
      sock.on('close', () => finish({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: 'TCP: the upstream closed the connection before answering' }));
      sock.on('data', (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < len + 2) break;
          const msg = buf.subarray(2, len + 2);
          buf = buf.subarray(len + 2);
          const h = responseHeader(msg);
          if (h && h.isResponse && h.id === q.id) return finish({ ok: true, response: Buffer.from(msg) });
        }
        if (buf.length > MAX_TCP_MESSAGE + 2) finish({ ok: false, reason: 'DNS_UPSTREAM_UNREACHABLE', detail: 'TCP: oversized response' });
      });
      const frame = Buffer.allocUnsafe(raw.length + 2);
      frame.writeUInt16BE(raw.length, 0);
      raw.copy(frame, 2);
      sock.connect(u.port, u.ip, () => void sock.write(frame));
    });
  }
}

function familyOf(ip: string): 4 | 6 {
  return isIP(ip) === 6 ? 6 : 4;
}

function fmt(u: Upstream): string {
  return u.ip.includes(':') ? `[${u.ip}]:${u.port}` : `${u.ip}:${u.port}`;
}

/** Plain sockets of the node proxy's own namespace (loopback mode, fixed listener addresses). */
export const hostSockets: UpstreamSockets = {
  udp: (family) =>
    new Promise((resolve, reject) => {
      const s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      s.once('error', reject);
      s.bind(0, () => {
        s.off('error', reject);
        resolve(s);
      });
    }),
  tcp: () => new Socket(),
};
