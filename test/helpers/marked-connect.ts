import * as net from 'node:net';
import type { CaptureAvailable } from '../../src/native/capture';
import { socketFd } from '../../src/native/socket-fd';
import { prepareDial } from '../../src/transport/socket-opts';

/**
 * Dials the way the node proxy dials (prepareDial: bind, then SO_MARK on the descriptor at
 * 'connectionAttempt', before the SYN), so capture tests exercise the shipped mechanism.
 */
export function markedConnect(capture: CaptureAvailable, host: string, port: number, mark: number, onMarkError: (err: Error) => void): net.Socket {
  const family = net.isIP(host) === 6 ? 6 : 4;
  const d = prepareDial(family, undefined, { noDelay: true, keepalive: false, keepaliveTime: 0, mark, markSocket: (s, m) => capture.addon.setMark(socketFd(s), m) });
  const sock = net.connect({ host, port, ...(d.localAddress ? { localAddress: d.localAddress } : {}) });
  d.attach(sock, onMarkError);
  return sock;
}
