import * as fs from 'node:fs';
import * as path from 'node:path';

/** An address as the addon returns it (not yet canonicalised). */
export interface RawAddr {
  readonly ip: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/**
 * The functions of native/capture.c. Every fd is a plain socket descriptor; every failure
 * throws an Error whose `code` is the errno name (EPERM, EBADF, ...) and whose `syscall`
 * names the call.
 */
export interface CaptureAddon {
  /** SO_ORIGINAL_DST, then IP6T_SO_ORIGINAL_DST; null when conntrack has no NAT entry for it. */
  getOriginalDst(fd: number): RawAddr | null;
  /** SO_MARK (needs CAP_NET_ADMIN). */
  setMark(fd: number, mark: number): void;
  getMark(fd: number): number;
  /** IP_TRANSPARENT or IPV6_TRANSPARENT by the socket's family (needs CAP_NET_ADMIN). */
  setTransparent(fd: number, on: boolean): void;
  /** IP_FREEBIND or IPV6_FREEBIND by the socket's family. */
  setFreebind(fd: number): void;
  /**
   * An unconnected TCP descriptor for a dial: SO_MARK (mark ≠ 0), IP_TRANSPARENT +
   * IP_FREEBIND (transparent), and a bind to `bindIp` with IP_BIND_ADDRESS_NO_PORT, all set
   * before bind/connect. The caller hands it to Node (see src/transport/socket-opts.ts).
   */
  createDialSocket(family: 4 | 6, mark: number, bindIp: string | null, transparent: boolean): number;
  /** F_DUPFD_CLOEXEC: a second descriptor of the same socket (hands an accepted connection to a worker thread). */
  dupFd(fd: number): number;
}

/** The addon loaded: its functions are usable. */
export interface CaptureAvailable {
  readonly available: true;
  readonly addon: CaptureAddon;
  /** Where it was loaded from (for /config_dump and logs). */
  readonly path: string;
}

/** The addon could not be loaded; `reason` says why, for one log line at startup. */
export interface CaptureUnavailable {
  readonly available: false;
  readonly reason: string;
}

export type Capture = CaptureAvailable | CaptureUnavailable;

/** node-gyp's output name (binding.gyp target `ztunnel_capture`). */
export const ADDON_FILE = 'build/Release/ztunnel_capture.node';

const EXPORTS: readonly (keyof CaptureAddon)[] = ['getOriginalDst', 'setMark', 'getMark', 'setTransparent', 'setFreebind', 'createDialSocket', 'dupFd'];

/**
 * Where the addon may be: the package root seen from dist/src/native (compiled, the normal
 * case and the container image's /app/dist/src/native) or from src/native (ts-node).
 */
export function addonCandidates(fromDir: string = __dirname): string[] {
  return [path.resolve(fromDir, '../../..', ADDON_FILE), path.resolve(fromDir, '../..', ADDON_FILE)];
}

/**
 * Loads the capture addon. Called by a composition root when it needs transparent capture
 * (never at import time, so commands that do not capture pay nothing and a missing build
 * breaks nothing else). Never throws: a missing or broken build yields `available: false`
 * with a reason naming the file and the loader's error, e.g.
 * "addon not built: build/Release/ztunnel_capture.node not found (…; run node scripts/build-native.js …)".
 *
 * `load` is injectable so tests can exercise the failure paths with a real require of a
 * bad file rather than a mock.
 */
export function loadCapture(opts: { candidates?: readonly string[]; load?: (file: string) => unknown; platform?: string } = {}): Capture {
  const platform = opts.platform ?? process.platform;
  if (platform !== 'linux') return { available: false, reason: `transparent capture is Linux-only (platform ${platform})` };
  const candidates = opts.candidates ?? addonCandidates();
  const file = candidates.find((c) => fs.existsSync(c));
  if (file === undefined) {
    return { available: false, reason: `addon not built: ${ADDON_FILE} not found (looked in ${candidates.join(', ')}; run node scripts/build-native.js, which needs make, a C compiler and python3)` };
  }
  const load = opts.load ?? ((f: string): unknown => require(f) as unknown);
  let mod: unknown;
  try {
    mod = load(file);
  } catch (err) {
    return { available: false, reason: `addon not loadable: ${file}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const missing = EXPORTS.filter((k) => typeof (mod as Record<string, unknown> | null)?.[k] !== 'function');
  if (missing.length > 0) return { available: false, reason: `addon at ${file} is stale or foreign: missing ${missing.join(', ')} (rebuild with node scripts/build-native.js)` };
  return { available: true, addon: mod as CaptureAddon, path: file };
}

/** The one log line a proxy emits at startup when capture is off, so users see why. */
export function describeCapture(c: Capture): string {
  return c.available ? `transparent capture available (${c.path})` : `transparent capture unavailable: ${c.reason}`;
}
