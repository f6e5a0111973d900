/**
 * HTTP/2 and liveness tuning shared by the HBONE client pool and server. Defaults are
 * ztunnel's: Node's http2 defaults (64 KiB windows, 16 KiB frames)
 * cap a tunnel at a few MB/s per RTT, so every value is set explicitly.
 */
export interface H2Tuning {
  /** SETTINGS_INITIAL_WINDOW_SIZE: per-stream receive window (HTTP2_STREAM_WINDOW_SIZE). */
  readonly streamWindow: number;
  /** Connection receive window, set with setLocalWindowSize (HTTP2_CONNECTION_WINDOW_SIZE). */
  readonly connectionWindow: number;
  /** SETTINGS_MAX_FRAME_SIZE (HTTP2_FRAME_SIZE). */
  readonly frameSize: number;
  /**
   * Node's per-session memory cap in MB (nghttp2 buffers + queued writes). It must exceed
   * the connection window or a fast sender trips ENHANCE_YOUR_CALM on a busy session.
   */
  readonly maxSessionMemoryMb: number;
}

export const DEFAULT_H2_TUNING: H2Tuning = {
  streamWindow: 4 * 1024 * 1024,
  connectionWindow: 16 * 1024 * 1024,
  frameSize: 1024 * 1024,
  maxSessionMemoryMb: 64,
};

/** PING liveness (ztunnel: first after 10s, then every 10s; dead after 20s without a pong). */
export interface KeepaliveOptions {
  /** Milliseconds between PINGs; 0 disables. */
  readonly interval: number;
  /** Milliseconds to wait for the PING ACK before the session is dropped. */
  readonly timeout: number;
}

export const DEFAULT_KEEPALIVE: KeepaliveOptions = { interval: 10_000, timeout: 20_000 };

export function h2Tuning(partial?: Partial<H2Tuning>): H2Tuning {
  return { ...DEFAULT_H2_TUNING, ...partial };
}

export function keepaliveOptions(partial?: Partial<KeepaliveOptions>): KeepaliveOptions {
  return { ...DEFAULT_KEEPALIVE, ...partial };
}
