import net from 'node:net';
import http from 'node:http';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export const fmtAddr = (a: HostPort): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** A currently free TCP port on `host` (bind 0, read, close). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address() as net.AddressInfo;
      s.close(() => resolve(addr.port));
    });
  });
}

/** Resolves once a TCP connect to addr succeeds; rejects after timeoutMs. */
export async function waitForTcp(addr: HostPort, timeoutMs: number, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: addr.host, port: addr.port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!isAlive()) throw new Error(`process behind ${fmtAddr(addr)} exited before it listened`);
    if (Date.now() > deadline) throw new Error(`nothing listening on ${fmtAddr(addr)} after ${timeoutMs}ms`);
    await sleep(100);
  }
}

/** GET a small local URL; resolves status and body (bounded by timeoutMs). */
export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 4_000_000) body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** Polls url until it answers 200; rejects after timeoutMs. */
export async function waitForHttp200(url: string, timeoutMs: number, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200) return;
      last = `status ${r.status}: ${r.body.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (!isAlive()) throw new Error(`process exited before ${url} was ready (${last})`);
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs}ms (${last})`);
    await sleep(200);
  }
}

/** The samples of one Prometheus family (any labels) in a text exposition; the value is group 1. */
const sampleRe = (name: string, flags: string): RegExp => new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)`, flags);

/** Value of one Prometheus sample (first series with that name) in a text exposition. */
export function promValue(text: string, name: string): number | null {
  const m = sampleRe(name, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** Sum of every series of one Prometheus family in a text exposition; null when it has none. */
export function promSum(text: string, name: string): number | null {
  let sum: number | null = null;
  for (const m of text.matchAll(sampleRe(name, 'gm'))) sum = (sum ?? 0) + Number(m[1]);
  return sum;
}

/**
 * A node proxy's JS heap in use. Node's `nodejs_heap_size_used_bytes` is the main thread's
 * heap only; a node with worker threads also reports each thread's heap
 * (`ztunnel_ts_thread_heap_used_bytes{thread}`, the main thread included), which is summed.
 */
export function proxyHeapBytes(text: string): number | null {
  return promSum(text, 'ztunnel_ts_thread_heap_used_bytes') ?? promValue(text, 'nodejs_heap_size_used_bytes');
}
