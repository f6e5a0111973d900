import type { SpiffeId } from '../identity/spiffe';
import type { Workload } from '../state/types';
import { ipBytes } from '../util/ip';
import { makeSocketAddr, type SocketAddr } from '../util/socket-addr';

/**
 * A workload's application tunnel (`applicationTunnel: {protocol, port}`): inbound HBONE
 * connections to it go to `port` instead of the requested one (when set), and with protocol
 * PROXY they start with a PROXY protocol v2 header that tells the app who really connected
 * (the client's address, the address it asked for, and its verified SPIFFE identity), since
 * the TCP connection the app sees comes from the proxy.
 */
export interface AppTunnelDelivery {
  /** Where the app is dialled. */
  readonly target: SocketAddr;
  /** PROXY: the header to write before any tunnel byte; null for protocol NONE. */
  readonly header: Buffer | null;
}

/**
 * The delivery for one inbound HBONE connection to `workload`, or null when it has no
 * application tunnel. `target` is the resolved app address; the header carries the HBONE
 * peer as source and the CONNECT authority as destination, as ztunnel writes them.
 */
export function appTunnelDelivery(workload: Workload, target: SocketAddr, peer: SocketAddr, authority: SocketAddr, peerIdentity: SpiffeId): AppTunnelDelivery | null {
  const at = workload.applicationTunnel;
  if (!at) return null;
  const dial = at.port === null ? target : makeSocketAddr(target.ip, at.port);
  if (at.protocol !== 'PROXY') return { target: dial, header: null };
  return { target: dial, header: encodeProxyV2(peer, authority, [{ type: PP2_TYPE_PEER_IDENTITY, value: Buffer.from(peerIdentity.toString(), 'utf8') }]) };
}

/**
 * The TLV type ztunnel uses for the client's verified identity (its SPIFFE URI, UTF-8). The
 * spec assigns no meaning to 0xD0; keeping ztunnel's choice lets apps written for it read ours.
 */
export const PP2_TYPE_PEER_IDENTITY = 0xd0;

/** The v2 header starts with these 12 bytes, which no v1 header or usual protocol can begin with. */
const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** High nibble: version 2; low nibble: command PROXY (the connection was relayed for someone else). */
const VERSION_2_PROXY = 0x21;
/** High nibble: address family (1 = IPv4, 2 = IPv6); low nibble: transport (1 = stream / TCP). */
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

/**
 * A PROXY protocol v2 header for a TCP connection from `src` to `dst`, with TLVs. Both
 * addresses must be of one family in the header: when they differ, the IPv4 one is sent as
 * its IPv4-mapped IPv6 form (::ffff:a.b.c.d) rather than dropping the addresses.
 */
export function encodeProxyV2(src: SocketAddr, dst: SocketAddr, tlvs: readonly ProxyTlv[] = []): Buffer {
  const v6 = src.family === 6 || dst.family === 6;
  const addrLen = v6 ? 36 : 12;
  const tlvLen = tlvs.reduce((n, t) => n + 3 + t.value.length, 0);
  const len = addrLen + tlvLen;
  if (len > 0xffff) throw new Error(`PROXY v2 header too long (${len} bytes after the fixed part)`);
  const out = Buffer.alloc(16 + len);
  SIGNATURE.copy(out, 0);
  out[12] = VERSION_2_PROXY;
  out[13] = v6 ? TCP_OVER_IPV6 : TCP_OVER_IPV4;
  out.writeUInt16BE(len, 14);
  let o = 16;
  const ipLen = v6 ? 16 : 4;
  for (const a of [src, dst]) {
    out.set(headerIp(a, v6), o);
    o += ipLen;
  }
  out.writeUInt16BE(src.port, o);
  out.writeUInt16BE(dst.port, o + 2);
  o += 4;
  for (const t of tlvs) {
    if (t.value.length > 0xffff) throw new Error(`PROXY v2 TLV 0x${t.type.toString(16)} too long (${t.value.length} bytes)`);
    out[o] = t.type;
    out.writeUInt16BE(t.value.length, o + 1);
    t.value.copy(out, o + 3);
    o += 3 + t.value.length;
  }
  return out;
}

function headerIp(a: SocketAddr, v6: boolean): Uint8Array {
  const b = ipBytes(a.ip);
  if (b === null) throw new Error(`not an IP address: ${a.ip}`);
  if (!v6 || b.length === 16) return b;
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(b, 12);
  return mapped;
}
