import * as http from 'node:http';
import type { Socket } from 'node:net';
import * as hdr from 'hdr-histogram-js';
import { openConn, type Entry } from '../lib/client';

/**
 * HTTP/1.1 load generator (a child process of the waypoint bench): `conns` keep-alive
 * connections through `entry` (optionally SOCKS5), each with one request outstanding, for
 * `seconds` after a warm-up; node:http parses the responses. Prints one JSON line:
 * requests, requests/s, p50/p90/p99 (ms), errors.
 */
interface LoadArgs {
  readonly entry: Entry;
  readonly conns: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly host: string;
  readonly path: string;
  /** Extra request headers (e.g. a bearer token). */
  readonly headers?: Readonly<Record<string, string>>;
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as LoadArgs;
  const agent = new http.Agent({ keepAlive: true, maxSockets: a.conns, maxFreeSockets: a.conns });
  // Every path keeps its connections: the mesh's sample app announces `Keep-Alive: timeout=1`,
  // which node:http's Agent on its own answers by opening a new connection per request
  // (HAProxy relays that header, the waypoint answers with its own), so the paths would not
  // be measured alike. Connections are never idle here long enough for the app to close them.
  agent.keepSocketAlive = (): boolean => true;
  // The path's own connection set-up (SOCKS5 CONNECT for the mesh), then plain HTTP/1.1.
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Socket) => void) => undefined }).createConnection = (_o, cb) => {
    openConn(a.entry, '', 10_000).then(
      (s) => cb(null, s),
      (e: Error) => cb(e),
    );
    return undefined;
  };
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let errors = 0;
  /** Error kinds (status code or error code) → count, so a result says what failed. */
  const kinds: Record<string, number> = {};
  const fail = (k: string): void => {
    errors++;
    kinds[k] = (kinds[k] ?? 0) + 1;
  };
  let requests = 0;
  let recording = false;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ agent, host: a.entry.first.host, port: a.entry.first.port, path: a.path, headers: { ...a.headers, host: a.host } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
          else if (recording) {
            hist.recordValue(Number((process.hrtime.bigint() - t0) / 1000n));
            requests++;
          }
          resolve();
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        fail(e.code ?? e.message);
        resolve();
      });
      req.end();
    });
  const start = Date.now();
  const warmEnd = start + a.warmupSeconds * 1000;
  const end = warmEnd + a.seconds * 1000;
  let measuredFrom = 0;
  const loop = async (): Promise<void> => {
    while (Date.now() < end) {
      if (!recording && Date.now() >= warmEnd) {
        recording = true;
        measuredFrom = Date.now();
      }
      await one();
    }
  };
  await Promise.all(Array.from({ length: a.conns }, loop));
  const elapsed = (Date.now() - (measuredFrom || warmEnd)) / 1000;
  agent.destroy();
  const q = (p: number): number => hist.getValueAtPercentile(p) / 1000;
  process.stdout.write(`${JSON.stringify({ requests, rps: requests / elapsed, p50: q(50), p90: q(90), p99: q(99), errors, errorKinds: kinds })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`http-load: ${String(e)}\n`);
  process.exit(1);
});
