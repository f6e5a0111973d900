/**
 * The load generator, a child process of the harness: it never shares an event loop with
 * the proxies or the server it measures. Every operation is bounded in time and in
 * count/bytes and ends by itself.
 */
import type net from 'node:net';
import * as hdr from 'hdr-histogram-js';
import { serveRpc } from './lib/ipc';
import { openConn, MODE_ECHO, MODE_SINK } from './lib/client';
import type { BulkArgs, BulkResult, LatencyArgs, LatencyResult, ConnRateArgs, ConnRateResult, HoldArgs, HoldResult } from './lib/load-types';

const CONNECT_TIMEOUT_MS = 10_000;
/** Longest wait for one echo (connection rate, idle-connection probe). */
const ECHO_TIMEOUT_MS = 10_000;

/** Remembers the first few distinct errors so a failing path explains itself. */
class Errors {
  count = 0;
  readonly samples: string[] = [];
  add(e: unknown): void {
    this.count++;
    const msg = e instanceof Error ? e.message : String(e);
    if (this.samples.length < 3 && !this.samples.includes(msg)) this.samples.push(msg);
  }
}

async function bulk(a: BulkArgs): Promise<BulkResult> {
  const errors = new Errors();
  const chunk = Buffer.alloc(a.chunkBytes, 0x61);
  const socks = await Promise.all(Array.from({ length: a.conns }, () => openConn(a.entry, MODE_SINK, CONNECT_TIMEOUT_MS)));
  let written = 0;
  let stopped = false;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(stop, a.durationMs);
    for (const s of socks) {
      s.on('error', (e) => errors.add(e));
      s.on('close', stop);
      // One pump per socket; a write that fills the buffer waits for 'drain' (backpressure).
      const pump = (): void => {
        while (!stopped) {
          written += chunk.length;
          if (written >= a.maxBytes) {
            stop();
            return;
          }
          if (!s.write(chunk)) return;
        }
      };
      s.on('drain', pump);
      pump();
    }
  });
  const elapsedMs = performance.now() - started;
  for (const s of socks) s.destroy();
  return { written, elapsedMs, errors: errors.count, errorSamples: errors.samples };
}

/** Round-trips `size`-byte messages on one connection until the shared budget runs out. */
function pingLoop(sock: net.Socket, msg: Buffer, budget: { left: number; warm: number; deadline: number }, hist: hdr.Histogram, errors: Errors): Promise<void> {
  return new Promise((resolve) => {
    let received = 0;
    let sentAt = 0n;
    let warm = budget.warm;
    // A reply that never comes must not hang the trial: give up a while after the deadline.
    const watchdog = setTimeout(() => {
      errors.add(new Error(`no echo within ${ECHO_TIMEOUT_MS}ms after the deadline`));
      sock.destroy();
    }, Math.max(0, budget.deadline - performance.now()) + ECHO_TIMEOUT_MS);
    sock.once('close', () => clearTimeout(watchdog));
    const finish = (): void => {
      clearTimeout(watchdog);
      sock.off('data', onData);
      sock.end();
      resolve();
    };
    const send = (): void => {
      if (warm <= 0) {
        if (budget.left <= 0 || performance.now() > budget.deadline) return finish();
        budget.left--;
      }
      received = 0;
      sentAt = process.hrtime.bigint();
      sock.write(msg);
    };
    const onData = (d: Buffer): void => {
      received += d.length;
      if (received < msg.length) return;
      if (warm > 0) warm--;
      else hist.recordValue(Number(process.hrtime.bigint() - sentAt) / 1000);
      send();
    };
    sock.on('data', onData);
    sock.on('error', (e) => {
      errors.add(e);
      resolve();
    });
    sock.once('close', resolve);
    send();
  });
}

async function latency(a: LatencyArgs): Promise<LatencyResult> {
  const errors = new Errors();
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  const msg = Buffer.alloc(a.messageBytes, 0x62);
  const socks = await Promise.all(Array.from({ length: a.conns }, () => openConn(a.entry, MODE_ECHO, CONNECT_TIMEOUT_MS)));
  const started = performance.now();
  const budget = { left: a.maxMessages, warm: a.warmupPerConn, deadline: started + a.maxMs };
  await Promise.all(socks.map((s) => pingLoop(s, msg, budget, hist, errors)));
  const elapsedMs = performance.now() - started;
  const q = (p: number): number => hist.getValueAtPercentile(p);
  const out: LatencyResult = {
    count: hist.totalCount,
    elapsedMs,
    p50us: q(50),
    p90us: q(90),
    p99us: q(99),
    p999us: q(99.9),
    maxUs: hist.maxValue,
    meanUs: hist.mean,
    errors: errors.count,
    errorSamples: errors.samples,
  };
  hist.destroy();
  return out;
}

/** connect → one request/response → close, repeatedly, `concurrency` at a time. */
async function connRate(a: ConnRateArgs): Promise<ConnRateResult> {
  const errors = new Errors();
  const msg = Buffer.alloc(a.messageBytes, 0x63);
  const started = performance.now();
  const deadline = started + a.maxMs;
  let left = a.maxConns;
  let completed = 0;
  const one = async (): Promise<void> => {
    const sock = await openConn(a.entry, MODE_ECHO, CONNECT_TIMEOUT_MS);
    await new Promise<void>((resolve, reject) => {
      let received = 0;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no echo within ${ECHO_TIMEOUT_MS}ms`));
      }, ECHO_TIMEOUT_MS);
      sock.once('close', () => clearTimeout(timer));
      sock.on('error', reject);
      sock.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= msg.length) sock.end();
      });
      sock.once('close', () => (received >= msg.length ? resolve() : reject(new Error(`closed after ${received} of ${msg.length} echoed bytes`))));
      sock.write(msg);
    });
  };
  const worker = async (): Promise<void> => {
    while (left > 0 && performance.now() < deadline && errors.count < a.maxErrors) {
      left--;
      try {
        await one();
        completed++;
      } catch (e) {
        errors.add(e);
      }
    }
  };
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  return { completed, elapsedMs: performance.now() - started, errors: errors.count, errorSamples: errors.samples };
}

/** Sockets held open by `hold` until `release`. */
const held: net.Socket[] = [];

async function hold(a: HoldArgs): Promise<HoldResult> {
  const errors = new Errors();
  const probe = Buffer.alloc(16, 0x64);
  const deadline = performance.now() + a.maxMs;
  let next = 0;
  const openOne = async (): Promise<void> => {
    const sock = await openConn(a.entry, MODE_ECHO, CONNECT_TIMEOUT_MS);
    sock.on('error', (e) => errors.add(e));
    // One echo round trip proves every hop (including lazily connected upstreams) is open.
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      const timer = setTimeout(() => reject(new Error(`no probe echo within ${ECHO_TIMEOUT_MS}ms`)), ECHO_TIMEOUT_MS);
      const onData = (d: Buffer): void => {
        got += d.length;
        if (got >= probe.length) {
          clearTimeout(timer);
          sock.off('data', onData);
          resolve();
        }
      };
      sock.on('data', onData);
      sock.once('close', () => {
        clearTimeout(timer);
        reject(new Error('closed before the probe echo'));
      });
      sock.write(probe);
    }).catch((e: unknown) => {
      sock.destroy();
      throw e;
    });
    held.push(sock);
  };
  const worker = async (): Promise<void> => {
    while (next < a.conns && performance.now() < deadline && errors.count < a.maxErrors) {
      next++;
      try {
        await openOne();
      } catch (e) {
        errors.add(e);
      }
    }
  };
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  return { opened: held.length, errors: errors.count, errorSamples: errors.samples };
}

async function release(): Promise<{ closed: number }> {
  const socks = held.splice(0);
  await Promise.all(
    socks.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          const t = setTimeout(() => {
            s.destroy();
            resolve();
          }, 5000);
          s.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          s.end();
        }),
    ),
  );
  return { closed: socks.length };
}

serveRpc({
  bulk: (a: BulkArgs) => bulk(a),
  latency: (a: LatencyArgs) => latency(a),
  connrate: (a: ConnRateArgs) => connRate(a),
  hold: (a: HoldArgs) => hold(a),
  release: () => release(),
});

