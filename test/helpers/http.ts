import { request } from 'node:http';
import type { SocketAddr } from '../../src/util/socket-addr';

export interface HttpResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A plain HTTP/1.1 request to a test server; bounded by a timeout. */
export function httpRequest(addr: SocketAddr, path: string, method = 'GET', timeoutMs = 10_000, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: addr.ip, port: addr.port, path, method, timeout: timeoutMs, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${addr.ip}:${addr.port}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
