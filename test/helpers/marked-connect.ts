import * as net from 'node:net';
import type { CaptureAvailable } from '../../src/native/capture';
import { prepareDial } from '../../src/transport/socket-opts';

/**
 * Dials the way the node proxy dials (prepareDial: the addon creates the descriptor with
 * SO_MARK set, the socket adopts it before connecting), so capture tests exercise the
 * shipped mechanism.
 */
export function markedConnect(capture: CaptureAvailable, host: string, port: number, mark: number, onMarkError: (err: Error) => void): net.Socket {
  const family = net.isIP(host) === 6 ? 6 : 4;
  const d = prepareDial(family, undefined, { noDelay: true, keepalive: false, keepaliveTime: 0, mark, createSocket: (f, o) => capture.addon.createDialSocket(f, o.mark, o.bindIp, o.transparent) });
  const sock = net.connect({ host, port, ...(d.localAddress ? { localAddress: d.localAddress } : {}) });
  d.attach(sock, onMarkError);
  return sock;
}
