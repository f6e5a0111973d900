import { addonCandidates, ADDON_FILE } from '../native/capture';
import * as fs from 'node:fs';

/** One message read from a SOCK_SEQPACKET socket. */
export interface SeqpacketMessage {
  /** Empty when the peer closed the connection. */
  readonly data: Buffer;
  /** Descriptors that arrived as SCM_RIGHTS (received close-on-exec; the caller owns them). */
  readonly fds: readonly number[];
  /** MSG_TRUNC or MSG_CTRUNC: the message or its descriptors did not fit; received descriptors were already closed. */
  readonly truncated: boolean;
}

/** An opaque libuv poll handle (see native/netns.c). */
export type PollHandle = object & { readonly __poll: unique symbol };

/**
 * The functions of native/netns.c (same .node module as native/capture.c). Every failure
 * throws an Error whose `code` is the errno name and whose `syscall` names the call.
 */
export interface NetnsAddon {
  /** A listening TCP socket inside the namespace `nsFd` ([::] is dual stack). */
  netnsTcpListener(nsFd: number, host: string, port: number, mark: number, reusePort: boolean): number;
  /**
   * An unconnected TCP socket inside the namespace, with SO_MARK (0 = none), bound port-less
   * to bindIp when given (IP_TRANSPARENT + IP_FREEBIND first when transparent).
   */
  netnsTcpSocket(nsFd: number, family: 4 | 6, mark: number, bindIp: string | null, transparent: boolean): number;
  /** A bound UDP socket inside the namespace, with SO_MARK (0 = none). */
  netnsUdpSocket(nsFd: number, host: string, port: number, mark: number, reusePort: boolean): number;
  /** Writes /proc/sys/<name> (a net/... sysctl) as seen inside the namespace. */
  netnsSysctl(nsFd: number, name: string, value: string): void;
  seqpacketConnect(path: string): number;
  seqpacketListen(path: string, backlog: number): number;
  /** -1 when no connection is waiting. */
  seqpacketAccept(fd: number): number;
  seqpacketSend(fd: number, data: Buffer, fds: readonly number[]): number;
  /** null when nothing is ready (the socket is non-blocking). */
  seqpacketRecv(fd: number, maxBytes: number, maxFds: number): SeqpacketMessage | null;
  pollStart(fd: number, onEvent: (error: string | null, readable: boolean, disconnected: boolean) => void): PollHandle;
  pollStop(handle: PollHandle): void;
  /** From native/capture.c: SO_MARK of a socket (tests). */
  getMark(fd: number): number;
}

export type NetnsSupport = { readonly available: true; readonly addon: NetnsAddon } | { readonly available: false; readonly reason: string };

const EXPORTS: readonly (keyof NetnsAddon)[] = [
  'netnsTcpListener', 'netnsTcpSocket', 'netnsUdpSocket', 'netnsSysctl', 'seqpacketConnect', 'seqpacketListen', 'seqpacketAccept', 'seqpacketSend', 'seqpacketRecv', 'pollStart', 'pollStop', 'getMark',
];

/**
 * Loads the in-pod functions of the native addon. Called by the composition roots that need
 * them (in-pod node proxy, the agent), never at import time. Never throws.
 */
export function loadNetnsAddon(candidates: readonly string[] = addonCandidates()): NetnsSupport {
  if (process.platform !== 'linux') return { available: false, reason: `in-pod mode is Linux-only (platform ${process.platform})` };
  const file = candidates.find((c) => fs.existsSync(c));
  if (file === undefined) return { available: false, reason: `addon not built: ${ADDON_FILE} not found (run node scripts/build-native.js)` };
  let mod: Record<string, unknown>;
  try {
    mod = require(file) as Record<string, unknown>;
  } catch (err) {
    return { available: false, reason: `addon not loadable: ${file}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const missing = EXPORTS.filter((k) => typeof mod[k] !== 'function');
  if (missing.length > 0) return { available: false, reason: `addon at ${file} lacks ${missing.join(', ')} (rebuild with node scripts/build-native.js)` };
  return { available: true, addon: mod as unknown as NetnsAddon };
}
