import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { DnsClient } from './answer';
import type { DnsEngine, DnsReply } from './engine';
import type { Forwarder } from './forwarder';
import { fitForUdp, MAX_QUERY_BYTES } from './message';

/** A TCP client idle this long is closed (ztunnel's DNS TCP request timeout). */
export const TCP_IDLE_MS = 5000;
/** Queries one TCP connection may have in flight; past it, reading pauses until answers go out. */
const TCP_PIPELINE = 16;

export interface DnsServerOptions {
  readonly engine: DnsEngine;
  readonly forwarder: Forwarder;
  /** The workload asking, from the listener (per workload or per pod) or, for a shared listener, the source address. */
  readonly client: (srcIp: string) => DnsClient | undefined;
  readonly logger: Logger;
  /** Bound UDP socket and listening TCP server on the same address; this server owns both. */
  readonly udp: dgram.Socket;
  readonly tcp: net.Server;
  readonly maxTcpConnections: number;
}

/**
 * One DNS listener (UDP and TCP on one address). UDP answers that do not fit the client's
 * size go out truncated (TC) so it retries over TCP; TCP reads length-prefixed queries,
 * answers each as soon as it is ready (out of order is allowed), pauses reading while
 * TCP_PIPELINE queries are pending, refuses connections past maxTcpConnections and closes
 * idle ones: a flood costs bounded memory. Owns its sockets and every accepted connection.
 */
export class DnsServer {
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  constructor(private readonly o: DnsServerOptions) {
    o.udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    o.udp.on('error', (err) => o.logger.warn({ err }, 'DNS UDP socket error'));
    o.tcp.on('connection', (s) => this.onConnection(s));
    o.tcp.on('error', (err) => o.logger.warn({ err }, 'DNS TCP listener error'));
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const reply = this.o.engine.handle(msg, 'udp', `${rinfo.address}:${rinfo.port}`, this.o.client(rinfo.address), this.o.forwarder);
    if (reply instanceof Promise) void reply.then((r) => this.sendUdp(r, rinfo));
    else this.sendUdp(reply, rinfo);
  }

  private sendUdp(reply: DnsReply | null, rinfo: dgram.RemoteInfo): void {
    if (!reply || this.closed) return;
    this.o.udp.send(reply.query ? fitForUdp(reply.query, reply.bytes) : reply.bytes, rinfo.port, rinfo.address, ignore);
  }

  private onConnection(s: net.Socket): void {
    if (this.closed || this.conns.size >= this.o.maxTcpConnections) {
      s.destroy();
      return;
    }
    this.conns.add(s);
    s.once('close', () => this.conns.delete(s));
    s.on('error', ignore);
    s.setTimeout(TCP_IDLE_MS, () => s.destroy());
    const src = `${s.remoteAddress}:${s.remotePort}`;
    const client = this.o.client(s.remoteAddress ?? '');
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    const done = (reply: DnsReply | null): void => {
      pending--;
      if (s.destroyed) return;
      if (reply) {
        const frame = Buffer.allocUnsafe(reply.bytes.length + 2);
        frame.writeUInt16BE(reply.bytes.length, 0);
        reply.bytes.copy(frame, 2);
        s.write(frame);
      }
      if (ended && pending === 0) s.end();
      else if (pending < TCP_PIPELINE && s.isPaused()) s.resume();
    };
    s.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len > MAX_QUERY_BYTES) {
          // Not a query: nothing worth reading 64 KiB for. Dropping the connection is the answer.
          s.destroy();
          return;
        }
        if (buf.length < len + 2) break;
        const msg = Buffer.from(buf.subarray(2, len + 2));
        buf = buf.subarray(len + 2);
        pending++;
        if (pending >= TCP_PIPELINE) s.pause();
        const reply = this.o.engine.handle(msg, 'tcp', src, client, this.o.forwarder);
        if (reply instanceof Promise) void reply.then(done);
        else done(reply);
      }
    });
    s.on('end', () => {
      ended = true;
      if (pending === 0) s.end();
    });
  }

  /** Stops both listeners and closes every TCP connection (queries in flight are abandoned). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.o.tcp.close();
    try {
      this.o.udp.close();
    } catch {
      // already closed
    }
    for (const s of this.conns) s.destroy();
    this.conns.clear();
  }
}

function ignore(): void {
  // UDP send errors (the client went away) and socket errors after close have nothing to tell.
}

/** Binds UDP and TCP on host:port in this process's namespace (loopback mode, fixed addresses). */
export async function bindHostPair(host: string, port: number): Promise<{ udp: dgram.Socket; tcp: net.Server }> {
  const tcp = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host, port, exclusive: true }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const bound = tcp.address();
  const actualPort = bound && typeof bound !== 'string' ? bound.port : port;
  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: host, port: actualPort, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    tcp.close();
    udp.close();
    throw err;
  }
  return { udp, tcp };
}
