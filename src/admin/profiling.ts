import { Session } from 'node:inspector';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, sendText } from './http-util';

/** ztunnel's /debug/pprof/profile bounds: 1-300 s (default 10), 1-1000 Hz (default 100). */
export const CPU_PROFILE_SECONDS = { min: 1, max: 300, default: 10 } as const;
export const CPU_PROFILE_HZ = { min: 1, max: 1000, default: 100 } as const;
/**
 * A heap snapshot pauses the process for a time that grows with the heap and produces
 * several times the heap in JSON; above this heap size it is refused, and its output is cut
 * off at HEAP_SNAPSHOT_MAX_BYTES.
 */
export const HEAP_SNAPSHOT_MAX_HEAP = 1024 * 1024 * 1024;
export const HEAP_SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024 * 1024;

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T))));
}

function intParam(url: URL, name: string, bounds: { min: number; max: number; default: number }): number | string {
  const raw = url.searchParams.get(name);
  if (raw === null) return bounds.default;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  return n >= bounds.min && n <= bounds.max ? n : `${name} must be an integer from ${bounds.min} to ${bounds.max}, got ${JSON.stringify(raw)}`;
}

/**
 * The admin server's equivalents of ztunnel's /debug/pprof endpoints, through the V8
 * inspector of this process (no flag, no extra port): a sampled CPU profile for N seconds
 * (Chrome DevTools `.cpuprofile` JSON) and a heap snapshot (`.heapsnapshot`). One
 * profile at a time; the admin server is loopback-only, so are these.
 */
export class Profiler {
  private busy = false;

  /** GET /debug/pprof/profile?seconds=1..300&frequency=1..1000 */
  async cpu(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'GET') return sendText(res, 405, 'method not allowed; use GET\n');
    const seconds = intParam(url, 'seconds', CPU_PROFILE_SECONDS);
    const hz = intParam(url, 'frequency', CPU_PROFILE_HZ);
    if (typeof seconds === 'string' || typeof hz === 'string') return sendText(res, 400, `${typeof seconds === 'string' ? seconds : hz}\n`);
    if (this.busy) return sendText(res, 409, 'a profile is already being taken; try again when it finishes\n');
    this.busy = true;
    const session = new Session();
    try {
      session.connect();
      await post(session, 'Profiler.enable');
      await post(session, 'Profiler.setSamplingInterval', { interval: Math.round(1_000_000 / hz) });
      await post(session, 'Profiler.start');
      // The client hanging up ends the profile early, not the process's profiling state.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const { profile } = await post<{ profile: unknown }>(session, 'Profiler.stop');
      if (res.destroyed) return;
      res.setHeader('content-disposition', `attachment; filename="cpu-${Date.now()}.cpuprofile"`);
      sendJson(res, 200, profile);
    } finally {
      session.disconnect();
      this.busy = false;
    }
  }

  /** GET /debug/pprof/heap: a V8 heap snapshot, streamed. */
  async heap(req: IncomingMessage, res: ServerResponse, heapUsed: () => number): Promise<void> {
    if (req.method !== 'GET') return sendText(res, 405, 'method not allowed; use GET\n');
    if (this.busy) return sendText(res, 409, 'a profile is already being taken; try again when it finishes\n');
    const used = heapUsed();
    if (used > HEAP_SNAPSHOT_MAX_HEAP) return sendText(res, 413, `the heap holds ${used} bytes; snapshots are taken only below ${HEAP_SNAPSHOT_MAX_HEAP} bytes (the process would pause too long)\n`);
    this.busy = true;
    const session = new Session();
    let sent = 0;
    try {
      session.connect();
      res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="heap-${Date.now()}.heapsnapshot"` });
      session.on('HeapProfiler.addHeapSnapshotChunk', (m) => {
        const chunk = (m.params as { chunk: string }).chunk;
        sent += Buffer.byteLength(chunk);
        if (sent > HEAP_SNAPSHOT_MAX_BYTES) res.destroy(new Error(`heap snapshot larger than ${HEAP_SNAPSHOT_MAX_BYTES} bytes: cut off`));
        else if (!res.destroyed) res.write(chunk);
      });
      await post(session, 'HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      res.end();
    } finally {
      session.disconnect();
      this.busy = false;
    }
  }
}
