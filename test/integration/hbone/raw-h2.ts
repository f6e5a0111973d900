import type { ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { InboundConnect } from '../../../src/transport/hbone/types';
import { splice } from '../../../src/transport/splice';
import type { SocketAddr } from '../../../src/util/socket-addr';
import { echo, readAll, startApp, startHbone, type HboneSide, type HboneSideOptions } from './fixture';

/** What the server answered on stream 1. */
export type RawAnswer = { kind: 'headers'; status: number | 'unknown' } | { kind: 'rst'; code: number } | { kind: 'goaway'; code: number } | { kind: 'closed' };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  if (n.length > 126 || v.length > 126) throw new Error('test header too long');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

const STATIC_STATUS: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };

/**
 * A deliberately dumb HTTP/2 client that sends exactly the pseudo-headers it is given, so
 * tests can send what Node's own client refuses to (CONNECT with :path, no :authority).
 */
export function rawRequest(opts: tls.ConnectionOptions, headers: [string, string][], timeoutMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ ...opts, ALPNProtocols: ['h2'] });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (a: RawAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => {
      settled = true;
      sock.destroy();
      reject(new Error('raw h2 request timed out'));
    }, timeoutMs);
    sock.on('error', () => done({ kind: 'closed' }));
    sock.on('close', () => done({ kind: 'closed' }));
    sock.once('secureConnect', () => {
      const block = Buffer.concat(headers.map(([k, v]) => literal(k, v)));
      sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x4, 1, block)]));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let guard = 0; buf.length >= 9 && guard < 100; guard++) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
        else if (type === 3 && stream === 1) done({ kind: 'rst', code: payload.readUInt32BE(0) });
        else if (type === 7) done({ kind: 'goaway', code: payload.readUInt32BE(4) });
        else if (type === 1 && stream === 1) done({ kind: 'headers', status: STATIC_STATUS[payload[0]!] ?? 'unknown' });
      }
    });
  });
}

/**
 * Rapid reset (CVE-2023-44487 pattern): `n` CONNECT streams each cancelled right after
 * its HEADERS, all in one burst. Resolves with the GOAWAY code if the server sends one,
 * or 'closed'/'open' (still open after `waitMs`).
 */
export function rapidReset(opts: tls.ConnectionOptions, n: number, waitMs = 2000): Promise<{ goaway: number | null; state: 'closed' | 'open' }> {
  return new Promise((resolve) => {
    const sock = tls.connect({ ...opts, ALPNProtocols: ['h2'] });
    let buf = Buffer.alloc(0);
    let goaway: number | null = null;
    const finish = (state: 'closed' | 'open'): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ goaway, state });
    };
    const timer = setTimeout(() => finish('open'), waitMs);
    sock.on('error', () => undefined);
    sock.on('close', () => finish('closed'));
    sock.once('secureConnect', () => {
      const parts: Buffer[] = [PREFACE, frame(4, 0, 0, Buffer.alloc(0))];
      const block = Buffer.concat([literal(':method', 'CONNECT'), literal(':authority', '127.0.0.1:80')]);
      const cancel = Buffer.alloc(4);
      cancel.writeUInt32BE(8);
      for (let i = 0; i < n; i++) {
        const id = 2 * i + 1;
        parts.push(frame(1, 0x4, id, block), frame(3, 0, id, cancel));
      }
      sock.write(Buffer.concat(parts));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let guard = 0; buf.length >= 9 && guard < 100_000; guard++) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        if (buf[3] === 7) goaway = buf.readUInt32BE(9 + 4);
        if (buf[3] === 4 && !(buf[4]! & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));
        buf = buf.subarray(9 + len);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------
// A frame-level client for abuse tests (floods, stalls, oversized headers). Everything it
// sends is built by hand, so it can do what a well-behaved HTTP/2 stack never would.
// ---------------------------------------------------------------------------------------

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 } as const;

/** One HTTP/2 frame (RFC 9113 §4.1). */
export function h2frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return frame(type, flags, stream, payload);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` carries the pattern bits. */
export function hpackInt(value: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  for (let guard = 0; v >= 128 && guard < 8; guard++) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Literal header field, new name; `index` true = "with incremental indexing" (enters the dynamic table). */
export function hpackLiteral(name: string, value: string | Buffer, index = false): Buffer {
  const n = Buffer.from(name);
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from([index ? 0x40 : 0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v]);
}

/** Indexed header field (RFC 7541 §6.1): dynamic-table entries start at index 62. */
export function hpackIndexed(index: number): Buffer {
  return hpackInt(index, 7, 0x80);
}

/** A well-formed HBONE CONNECT header block for `authority`. */
export function connectBlock(authority: string): Buffer {
  return Buffer.concat([hpackLiteral(':method', 'CONNECT'), hpackLiteral(':authority', authority)]);
}

export function settingsPayload(entries: [number, number][]): Buffer {
  const b = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, v], i) => {
    b.writeUInt16BE(id, 6 * i);
    b.writeUInt32BE(v, 6 * i + 2);
  });
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export interface RawH2Options {
  /** Answer the server's PINGs (default true). */
  ackPings?: boolean;
  /** Answer the server's SETTINGS (default true). */
  ackSettings?: boolean;
  /** Our SETTINGS entries sent after the preface (e.g. [[4, 0]] = INITIAL_WINDOW_SIZE 0). */
  settings?: [number, number][];
}

/**
 * A raw HTTP/2-over-TLS connection that records what the server sends: GOAWAY, per-stream
 * RST_STREAM codes and response statuses, DATA bytes, window grants. The frame parser is
 * bounded per read and tolerant of a connection torn down mid-frame.
 */
export class RawH2 {
  readonly sock: tls.TLSSocket;
  goaway: number | null = null;
  goawayAt = 0;
  closedAt = 0;
  readonly rst = new Map<number, number>();
  readonly status = new Map<number, number | 'unknown'>();
  readonly dataBytes = new Map<number, number>();
  /** Server's SETTINGS_INITIAL_WINDOW_SIZE (what each new stream may send before any WINDOW_UPDATE). */
  initialWindow = 65_535;
  /** Connection-level send window granted to us (65535 + WINDOW_UPDATEs on stream 0). */
  connGranted = 65_535;
  readonly streamGranted = new Map<number, number>();
  pingsFromServer = 0;
  /** SETTINGS frames (non-ACK) received from the server. */
  serverSettings = 0;
  settingsAcks = 0;
  pingAcks = 0;
  private buf: Buffer = Buffer.alloc(0);
  private readonly o: Required<Omit<RawH2Options, 'settings'>> & { settings: [number, number][] };

  private constructor(opts: tls.ConnectionOptions, o: RawH2Options) {
    this.o = { ackPings: o.ackPings ?? true, ackSettings: o.ackSettings ?? true, settings: o.settings ?? [] };
    this.sock = tls.connect({ ...opts, ALPNProtocols: ['h2'] });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => (this.closedAt = Date.now()));
    this.sock.on('data', this.onData);
  }

  static open(opts: tls.ConnectionOptions, o: RawH2Options = {}): Promise<RawH2> {
    const c = new RawH2(opts, o);
    return new Promise((resolve, reject) => {
      c.sock.once('error', reject);
      c.sock.once('secureConnect', () => {
        c.sock.removeListener('error', reject);
        c.sock.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settingsPayload(c.o.settings))]));
        resolve(c);
      });
    });
  }

  get closed(): boolean {
    return this.closedAt !== 0;
  }

  /** Writes raw bytes; false = our socket buffer is full (the server is not reading). */
  send(b: Buffer): boolean {
    if (this.sock.destroyed) return false;
    return this.sock.write(b);
  }

  headers(stream: number, block: Buffer, flags = FLAG.END_HEADERS): boolean {
    return this.send(frame(FRAME.HEADERS, flags, stream, block));
  }

  /** Resolves true once `pred` holds, false after `ms` (never hangs a test). */
  async until(pred: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /** Resolves true when the session is over for us: GOAWAY received or socket closed. */
  endedWithin(ms: number): Promise<boolean> {
    return this.until(() => this.goaway !== null || this.closed, ms);
  }

  destroy(): void {
    this.sock.destroy();
  }

  private readonly onData = (d: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (let guard = 0; this.buf.length >= 9 && guard < 100_000; guard++) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const stream = this.buf.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(type, flags, stream, payload);
    }
  };

  private onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    switch (type) {
      case FRAME.SETTINGS:
        if (flags & FLAG.ACK) {
          this.settingsAcks++;
          return;
        }
        this.serverSettings++;
        for (let i = 0; i + 6 <= payload.length; i += 6) if (payload.readUInt16BE(i) === 4) this.initialWindow = payload.readUInt32BE(i + 2);
        if (this.o.ackSettings) this.send(frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
        return;
      case FRAME.PING:
        if (flags & FLAG.ACK) {
          this.pingAcks++;
          return;
        }
        this.pingsFromServer++;
        if (this.o.ackPings) this.send(frame(FRAME.PING, FLAG.ACK, 0, payload));
        return;
      case FRAME.GOAWAY:
        // The first GOAWAY says why; a later one (e.g. NO_ERROR on teardown) must not mask it.
        if (this.goaway === null) {
          this.goawayAt = Date.now();
          this.goaway = payload.readUInt32BE(4);
        }
        return;
      case FRAME.RST_STREAM:
        this.rst.set(stream, payload.readUInt32BE(0));
        return;
      case FRAME.HEADERS:
        this.status.set(stream, STATIC_STATUS[payload[0]!] ?? 'unknown');
        return;
      case FRAME.DATA:
        this.dataBytes.set(stream, (this.dataBytes.get(stream) ?? 0) + payload.length);
        return;
      case FRAME.WINDOW_UPDATE: {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (stream === 0) this.connGranted += inc;
        else this.streamGranted.set(stream, (this.streamGranted.get(stream) ?? 0) + inc);
        return;
      }
    }
  }
}

/** Heap + Buffer memory after forced GCs (needs `--expose-gc` set at runtime via v8 flags). */
export async function settledMemory(gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** Samples peak heapUsed + external every 20 ms until stopped (bounded by `maxMs`). */
export function peakSampler(maxMs = 30_000): { stop(): number } {
  let peak = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.external);
  };
  sample();
  const timer = setInterval(sample, 20);
  const cap = setTimeout(() => clearInterval(timer), maxMs);
  return {
    stop: () => {
      sample();
      clearInterval(timer);
      clearTimeout(cap);
      return peak;
    },
  };
}

/** The V8 gc() function (turns on --expose-gc for this process; tests that measure memory only). */
export function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export interface Arena {
  side: HboneSide;
  app: SocketAddr;
  calls: () => number;
  /** Requests currently held unanswered (see ArenaOptions.hold) and the most held at once. */
  held: () => number;
  maxHeld: () => number;
  /** Answers every held request (accept + splice), as a finished upstream dial would. */
  release: () => void;
  raw: (o?: RawH2Options) => Promise<RawH2>;
  /** One echo round trip through a NEW pooled connection (a well-behaved client). */
  served: (tag: string) => Promise<boolean>;
}

/**
 * An HBONE server whose handler counts calls and does what the node proxy does (dial, accept,
 * splice), an echo app, raw abusive clients, and a well-behaved client on its own connection.
 */
export interface ArenaOptions {
  server?: HboneSideOptions['server'];
  /** Keep matching requests unanswered (an upstream dial that has not finished yet). */
  hold?: (req: InboundConnect) => boolean;
  /** Splice idle timeout for answered streams (the node proxy's IDLE_TIMEOUT); none by default. */
  idleTimeout?: number;
}

export async function arena(t: ExecutionContext, o: ArenaOptions = {}): Promise<Arena> {
  const app = await startApp(t, echo);
  let calls = 0;
  const holding = new Set<InboundConnect>();
  let maxHeld = 0;
  const answer = (req: InboundConnect): void => {
    const up = net.connect({ host: req.authority.ip, port: req.authority.port, allowHalfOpen: true });
    up.once('error', () => req.reject(503, 'CONNECT'));
    up.once('connect', () => {
      up.removeAllListeners('error');
      try {
        void splice(req.accept(), up, o.idleTimeout ? { idleTimeout: o.idleTimeout } : {});
      } catch {
        up.destroy();
      }
    });
  };
  const onConnect = (req: InboundConnect): void => {
    calls++;
    if (!o.hold?.(req)) return answer(req);
    holding.add(req);
    maxHeld = Math.max(maxHeld, holding.size);
    void req.aborted.then(() => holding.delete(req));
  };
  const side = await startHbone(t, { onConnect, server: o.server ?? {} });
  const opened: RawH2[] = [];
  t.teardown(() => opened.forEach((c) => c.destroy()));
  let n = 0;
  return {
    side,
    app,
    calls: () => calls,
    held: () => holding.size,
    maxHeld: () => maxHeld,
    release: () => {
      for (const r of holding) answer(r);
      holding.clear();
    },
    raw: async (o) => {
      const c = await RawH2.open({ host: side.hboneAddr.ip, port: side.hboneAddr.port, secureContext: side.clientCert.secureContext, checkServerIdentity: () => undefined }, o);
      opened.push(c);
      return c;
    },
    served: async (tag) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 5000)));
      const roundTrip = async (): Promise<string> => {
        const hs = await side.pool.connect(side.target(app, { peerUid: `good-${tag}-${n++}` }));
        hs.stream.end(`hello ${tag}`);
        return (await readAll(hs.stream)).toString();
      };
      try {
        return (await Promise.race([roundTrip().catch((e: Error) => e.message), timeout])) === `hello ${tag}`;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Runs `fn` and reports its duration, process CPU time, settled heap+Buffer delta and peak delta (KiB). */
export async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; heapDeltaKiB: number; peakDeltaKiB: number; ms: number; cpuMs: number }> {
  const gc = exposeGc();
  const before = await settledMemory(gc);
  const peak = peakSampler();
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const result = await fn();
  const cpu = process.cpuUsage(cpu0);
  const ms = Date.now() - t0;
  const p = peak.stop();
  const after = await settledMemory(gc);
  return { result, ms, cpuMs: Math.round((cpu.user + cpu.system) / 1000), heapDeltaKiB: Math.round((after - before) / 1024), peakDeltaKiB: Math.round((p - before) / 1024) };
}


/**
 * Sends DATA on `streams` as fast as the server's flow control allows (never beyond the
 * granted windows), in `chunk`-byte frames, until nothing more may be sent for `quietMs`,
 * the session ends, or `maxMs` passes. Returns the bytes sent per stream.
 */
export async function fillWindows(c: RawH2, streams: number[], chunk = 65_536, quietMs = 300, maxMs = 15_000): Promise<Map<number, number>> {
  const sent = new Map<number, number>(streams.map((s) => [s, 0]));
  let connSent = 0;
  const body = Buffer.alloc(chunk, 0x61);
  const end = Date.now() + maxMs;
  let idleSince = Date.now();
  while (Date.now() < end && !c.closed && c.goaway === null) {
    let progressed = false;
    for (const s of streams) {
      if (c.rst.has(s)) continue;
      const room = Math.min(c.initialWindow + (c.streamGranted.get(s) ?? 0) - sent.get(s)!, c.connGranted - connSent, chunk);
      if (room <= 0) continue;
      const ok = c.send(h2frame(FRAME.DATA, 0, s, body.subarray(0, room)));
      sent.set(s, sent.get(s)! + room);
      connSent += room;
      progressed = true;
      if (!ok) await new Promise((r) => setTimeout(r, 1));
    }
    if (progressed) idleSince = Date.now();
    else if (Date.now() - idleSince > quietMs) break;
    else await new Promise((r) => setTimeout(r, 5));
  }
  return sent;
}

/** An app that writes as fast as the connection takes it (bounded by `cap` bytes). */
export interface Firehose {
  /** Bytes the app's socket accepted (written into Node/kernel buffers). */
  written: number;
  /** write() returned false at least once: the splice paused reading from it. */
  backpressured: boolean;
  /** The app's socket closed (the proxy let go of the connection). */
  closed: boolean;
  connections: number;
}

export async function startFirehose(t: ExecutionContext, cap = 256 * 1024 * 1024): Promise<{ addr: SocketAddr; state: Firehose }> {
  const state: Firehose = { written: 0, backpressured: false, closed: false, connections: 0 };
  const chunk = Buffer.alloc(64 * 1024, 0x7a);
  const addr = await startApp(t, (s) => {
    state.connections++;
    s.on('close', () => (state.closed = true));
    const pump = (): void => {
      while (state.written < cap && !s.destroyed) {
        state.written += chunk.length;
        if (!s.write(chunk)) {
          state.backpressured = true;
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  return { addr, state };
}
