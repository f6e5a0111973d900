import { closeSync } from 'node:fs';
import type { Capture } from './capture';

/** Whether inbound dials keep the client's IP, and why (one start-up log line). */
export interface OrigSrcMode {
  readonly enabled: boolean;
  /** ENABLE_ORIG_SRC as given: true/false, or null (unset: detect). */
  readonly requested: boolean | null;
  readonly reason: string;
}

/**
 * ENABLE_ORIG_SRC as ztunnel reads it: true or false as set; unset means detect, by trying
 * IP_TRANSPARENT on a throw-away socket (it needs CAP_NET_ADMIN and the native addon).
 * Detection never fails start-up: it falls back to the proxy's own address and says why.
 * An explicit `true` that cannot work is reported as not enabled with the reason, and
 * the caller refuses to start (a setting must do what it says).
 */
export function detectOrigSrc(capture: Capture, requested: boolean | null): OrigSrcMode {
  if (requested === false) return { enabled: false, requested, reason: 'ENABLE_ORIG_SRC=false' };
  if (!capture.available) return { enabled: false, requested, reason: `needs the native addon: ${capture.reason}` };
  let fd = -1;
  try {
    fd = capture.addon.createDialSocket(4, 0, null, true);
    return { enabled: true, requested, reason: requested ? 'ENABLE_ORIG_SRC=true' : 'IP_TRANSPARENT is permitted (ENABLE_ORIG_SRC unset)' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { enabled: false, requested, reason: code === 'EPERM' ? 'IP_TRANSPARENT needs CAP_NET_ADMIN (EPERM)' : err instanceof Error ? err.message : String(err) };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
