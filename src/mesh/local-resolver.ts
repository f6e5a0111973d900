import * as dgram from 'node:dgram';
import { isIP } from 'node:net';
import * as packet from 'dns-packet';
import { bindHostPair } from '../dns/server';
import { canonicalName } from '../dns/names';
import { errorResponse, fitForUdp, parseQuery, RCODE, type Query } from '../dns/message';
import type { SocketAddr } from '../util/socket-addr';
import type * as net from 'node:net';

/**
 * The local mesh's upstream nameserver: a tiny authoritative server on loopback for the names
 * the mesh file lists, standing in for the cluster DNS and the internet, so `npm start` shows
 * forwarding on a fresh machine without root (no port 53, no dnsmasq). Unknown names are
 * NXDOMAIN; a known name asked for another type gets an empty answer.
 */
export class LocalResolver {
  private readonly names: Map<string, string[]>;

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    records: Readonly<Record<string, readonly string[]>>,
    readonly address: SocketAddr,
  ) {
    this.names = new Map(Object.entries(records).map(([k, v]) => [canonicalName(k), [...v]]));
    udp.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply) udp.send(reply.query ? fitForUdp(reply.query, reply.bytes) : reply.bytes, rinfo.port, rinfo.address);
    });
    tcp.on('connection', (s) => {
      let buf: Buffer = Buffer.alloc(0);
      s.on('error', () => s.destroy());
      s.setTimeout(5000, () => s.destroy());
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
          const len = buf.readUInt16BE(0);
          const reply = this.answer(buf.subarray(2, len + 2));
          buf = buf.subarray(len + 2);
          if (!reply) continue;
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(reply.bytes.length);
          s.write(Buffer.concat([frame, reply.bytes]));
        }
      });
      s.on('end', () => s.end());
    });
  }

  static async start(addr: SocketAddr, records: Readonly<Record<string, readonly string[]>>): Promise<LocalResolver> {
    const pair = await bindHostPair(addr.ip, addr.port);
    return new LocalResolver(pair.udp, pair.tcp, records, addr);
  }

  private answer(raw: Buffer): { bytes: Buffer; query: Query | null } | null {
    const parsed = parseQuery(raw);
    if (!parsed.ok) return parsed.reply ? { bytes: parsed.reply, query: null } : null;
    const q = parsed.query;
    const ips = this.names.get(canonicalName(q.name));
    if (!ips) return { bytes: errorResponse(q, RCODE.NXDOMAIN), query: q };
    const family = q.type === 'A' ? 4 : q.type === 'AAAA' ? 6 : 0;
    const answers = ips.filter((ip) => isIP(ip) === family).map((ip) => ({ type: q.type as 'A' | 'AAAA', name: q.name, ttl: 60, class: 'IN' as const, data: ip }));
    const flags = packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE | (q.packet.flag_rd ? packet.RECURSION_DESIRED : 0);
    return { bytes: packet.encode({ id: q.id, type: 'response', flags, questions: q.packet.questions, answers }), query: q };
  }

  close(): void {
    this.tcp.close();
    this.udp.close();
  }
}
