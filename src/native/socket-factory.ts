import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Capture } from './capture';
import { connectMarked } from './sockets';

/** What a proxy-originated connection needs; a subset of net.connect's options. */
export interface ProxyConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string | undefined;
  readonly allowHalfOpen?: boolean;
  readonly noDelay?: boolean;
  readonly keepAliveMs?: number | undefined;
}

/**
 * Creates the proxy's outgoing TCP sockets (to apps, to peers' :15008, to waypoints).
 * With marking on, every socket carries PACKET_MARK from its first packet, so in-pod capture
 * rules (src/redirect) never send the proxy's own connections back to :15001 (a loop).
 * Use `connect()` wherever net.connect would be used; for TLS pass the socket to
 * `tls.connect({ socket })`.
 */
export interface ProxySocketFactory {
  connect(opts: ProxyConnectOptions): net.Socket;
  /** True when sockets are marked. */
  readonly marking: boolean;
  /** One line for the startup log: whether and why (not) sockets are marked. */
  readonly status: string;
}

/**
 * Builds the factory once at startup (composition root). Marking needs the addon, a
 * non-zero mark and CAP_NET_ADMIN; we probe SO_MARK once on a throw-away socket so a missing
 * privilege is reported at startup, not as a failed connection. Without marking, connections
 * use plain net.connect and the status says how capture rules must then exclude the proxy.
 */
export function createProxySocketFactory(capture: Capture, mark: number | null): ProxySocketFactory {
  const plain = (status: string): ProxySocketFactory => ({
    marking: false,
    status,
    connect: (o) => {
      const s = net.connect({ host: o.host, port: o.port, allowHalfOpen: o.allowHalfOpen ?? false, noDelay: o.noDelay ?? false, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
      if (o.keepAliveMs !== undefined) s.setKeepAlive(true, o.keepAliveMs);
      return s;
    },
  });
  if (mark === null || mark === 0) return plain('proxy sockets are not marked (no PACKET_MARK)');
  if (!capture.available) return plain(`proxy sockets are not marked: ${capture.reason}`);
  const probe = probeMark(capture.addon, mark);
  if (probe !== null) return plain(`proxy sockets are not marked: ${probe} (capture rules must then exclude the proxy by uid: REDIRECT_PROXY_UID)`);
  const cap = capture;
  return {
    marking: true,
    status: `proxy sockets carry SO_MARK 0x${mark.toString(16)}`,
    connect: (o) =>
      connectMarked(cap, {
        host: o.host,
        port: o.port,
        mark,
        allowHalfOpen: o.allowHalfOpen ?? false,
        noDelay: o.noDelay ?? false,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
        ...(o.keepAliveMs !== undefined ? { keepAliveMs: o.keepAliveMs } : {}),
      }),
  };
}

/** Null when SO_MARK can be set here; otherwise the error (EPERM without CAP_NET_ADMIN). */
function probeMark(addon: Extract<Capture, { available: true }>['addon'], mark: number): string | null {
  let fd = -1;
  try {
    fd = addon.createTcpSocket(4);
    addon.setMark(fd, mark);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EPERM' ? 'SO_MARK needs CAP_NET_ADMIN (EPERM)' : err instanceof Error ? err.message : String(err);
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
