/**
 * Independent DNS peers for tests: `dig` (bind9-dnsutils) as the client and `dnsmasq` as the
 * upstream nameserver, plus a raw UDP/TCP client for messages no real client would send.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { once } from 'node:events';

export function which(bin: string): string | null {
  for (const dir of ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin']) {
    if (fs.existsSync(`${dir}/${bin}`)) return `${dir}/${bin}`;
  }
  return null;
}

export interface DigAnswer {
  readonly name: string;
  readonly ttl: number;
  readonly type: string;
  readonly data: string;
}

export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, … or 'TIMEOUT' when dig got no answer. */
  readonly status: string;
  readonly flags: readonly string[];
  readonly answers: readonly DigAnswer[];
  readonly raw: string;
}

/** Runs dig against server:port and parses the header and the answer section. */
export function dig(server: string, port: number, args: readonly string[], extra: { timeoutS?: number } = {}): Promise<DigResult> {
  const argv = [`@${server}`, '-p', String(port), '+tries=1', `+time=${extra.timeoutS ?? 3}`, '+nocookie', ...args];
  return new Promise((resolve, reject) => {
    execFile('dig', argv, { timeout: 15_000 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      const status = /status: (\w+)/.exec(stdout)?.[1] ?? (/timed out|no servers could be reached/.test(stdout) ? 'TIMEOUT' : 'UNKNOWN');
      const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
      const answers: DigAnswer[] = [];
      const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(stdout)?.[1] ?? '';
      for (const line of section.split('\n')) {
        const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/.exec(line.trim());
        if (m) answers.push({ name: m[1] as string, ttl: Number(m[2]), type: m[3] as string, data: m[4] as string });
      }
      resolve({ status, flags, answers, raw: stdout });
    });
  });
}

/** dnsmasq as an upstream on ip:port: no system files read, records given as dnsmasq options. */
export async function startDnsmasq(ip: string, port: number, records: readonly string[]): Promise<{ stop: () => Promise<void>; proc: ChildProcess }> {
  const proc = spawn(
    'dnsmasq',
    ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces', `--listen-address=${ip}`, `--port=${port}`, '--pid-file', '--user=', '--local=/test/', ...records],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    await once(proc, 'exit');
  };
  for (let i = 0; i < 50; i++) {
    if (proc.exitCode !== null) throw new Error(`dnsmasq exited ${proc.exitCode}: ${stderr}`);
    const r = await dig(ip, port, ['ready.test', 'A'], { timeoutS: 1 }).catch(() => null);
    if (r && r.status !== 'TIMEOUT' && r.status !== 'UNKNOWN') return { stop, proc };
    await new Promise((res) => setTimeout(res, 100));
  }
  await stop();
  throw new Error(`dnsmasq on ${ip}:${port} did not answer: ${stderr}`);
}

/** Sends raw bytes over UDP from a fresh socket; resolves with the reply, or null after waitMs. */
export async function udpExchange(server: string, port: number, msg: Buffer, waitMs = 1000, bindIp?: string): Promise<Buffer | null> {
  const s = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
  await new Promise<void>((r) => s.bind({ port: 0, ...(bindIp ? { address: bindIp } : {}) }, () => r()));
  try {
    return await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), waitMs);
      s.once('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      s.send(msg, port, server);
    });
  } finally {
    s.close();
  }
}

/** A UDP socket that reads and never answers: an upstream that times out. */
export async function blackholeUdp(ip: string): Promise<{ port: number; received: () => number; close: () => void }> {
  const s = dgram.createSocket('udp4');
  let n = 0;
  s.on('message', () => n++);
  await new Promise<void>((r) => s.bind({ address: ip, port: 0 }, () => r()));
  return { port: s.address().port, received: () => n, close: () => s.close() };
}
