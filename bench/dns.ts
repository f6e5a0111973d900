/**
 * `npm run bench:dns [-- --seconds 3 --trials 3 --window 64]`
 *
 * The DNS proxy's query rate next to dnsmasq's, on this machine, in one run:
 *  - local:     the proxy answering a Service name from the mesh state, vs dnsmasq answering
 *               one of its own host records (both authoritative, no upstream);
 *  - forwarded: the proxy forwarding an outside name to an upstream dnsmasq, vs a second
 *               dnsmasq forwarding the same name to the same upstream with its cache off;
 *  - upstream:  the upstream dnsmasq asked directly (what forwarding adds is the difference).
 * The proxy is the real `ztunnel-ts node` (DNS_CAPTURE=true, every other listener off), fed a
 * LOCAL_XDS_PATH file. One UDP load generator in this process keeps `window` queries
 * outstanding for `seconds` per trial; trials of the targets are interleaved; medians of
 * queries/s and latency percentiles are reported with their spread, and the ratios to dnsmasq.
 * Results go to bench/results/dns-<timestamp>.json. No timing assertion anywhere.
 */
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as packet from 'dns-packet';
import { ProcessSet } from './lib/proc';
import { fmtNum, summarize, type Summary } from './lib/stats';
import { benchAddr } from './paths/addr';

const BLOCK = 7;
const ip = (h: number): string => benchAddr(BLOCK, h);
const UPSTREAM = { ip: ip(53), port: 15353 };
const DNSMASQ = { ip: ip(54), port: 15354 };
const CLIENT_WL = ip(10);
const PROXY_PORT = 15053;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

interface Target {
  readonly name: string;
  readonly kind: 'local' | 'forwarded' | 'upstream';
  readonly server: { ip: string; port: number };
  readonly qname: string;
  readonly expect: string;
}

interface Trial {
  readonly qps: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly errors: number;
}

/** Keeps `window` queries in flight from one socket for `seconds`; each answer must carry `expect`. */
async function load(t: Target, seconds: number, window: number): Promise<Trial> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind({ address: CLIENT_WL, port: 0 }, () => r()));
  const sentAt = new Map<number, bigint>();
  const lat: number[] = [];
  let ok = 0;
  let errors = 0;
  let nextId = 1;
  let running = true;
  const query = (id: number): Buffer => packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: t.qname }] });
  const send = (): void => {
    if (!running) return;
    const id = nextId;
    nextId = nextId === 65535 ? 1 : nextId + 1;
    sentAt.set(id, process.hrtime.bigint());
    sock.send(query(id), t.server.port, t.server.ip);
  };
  sock.on('message', (m) => {
    const id = m.readUInt16BE(0);
    const t0 = sentAt.get(id);
    if (t0 === undefined) return;
    sentAt.delete(id);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const d = packet.decode(m);
    if (d.answers?.some((a) => a.type === 'A' && a.data === t.expect)) ok++;
    else errors++;
    send();
  });
  // A lost datagram must not shrink the window for the rest of the trial.
  const refill = setInterval(() => {
    const now = process.hrtime.bigint();
    for (const [id, at] of sentAt) {
      if (now - at > 1_000_000_000n) {
        sentAt.delete(id);
        errors++;
        send();
      }
    }
  }, 200);
  const start = Date.now();
  for (let i = 0; i < window; i++) send();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  const elapsed = (Date.now() - start) / 1000;
  clearInterval(refill);
  sock.close();
  lat.sort((a, b) => a - b);
  const pct = (q: number): number => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? NaN;
  return { qps: ok / elapsed, p50ms: pct(0.5), p99ms: pct(0.99), errors };
}

async function waitAnswer(server: { ip: string; port: number }, qname: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const r = await load({ name: what, kind: 'local', server, qname, expect: '' }, 0.2, 1).catch(() => null);
    if (r && r.errors + r.qps > 0) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`${what} on ${server.ip}:${server.port} did not answer within 30s`);
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0] ?? '';
  } catch {
    return 'absent';
  }
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 3);
  const trials = arg('trials', 3);
  const window = arg('window', 64);
  const dnsmasqVersion = version('dnsmasq', ['--version']);
  if (dnsmasqVersion === 'absent') throw new Error('dnsmasq is needed as the peer (apt-get install dnsmasq-base)');
  const dir = mkdtempSync(path.join(tmpdir(), 'ztts-bench-dns-'));
  const procs = new ProcessSet();
  process.on('exit', () => procs.killAllNow());
  try {
    const common = ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces', '--pid-file', '--user='];
    procs.spawn('upstream', 'dnsmasq', [...common, `--listen-address=${UPSTREAM.ip}`, `--port=${UPSTREAM.port}`, '--address=/outside.bench/192.0.2.7'], { logPath: path.join(dir, 'upstream.log') });
    // The peer: its own records answered locally, everything else forwarded uncached (as the proxy does).
    procs.spawn('dnsmasq', 'dnsmasq', [...common, `--listen-address=${DNSMASQ.ip}`, `--port=${DNSMASQ.port}`, '--cache-size=0', `--server=${UPSTREAM.ip}#${UPSTREAM.port}`, '--host-record=svc.bench.local,10.96.0.10'], { logPath: path.join(dir, 'dnsmasq.log') });
    const localXds = path.join(dir, 'state.yaml');
    writeFileSync(
      localXds,
      `workloads:
  - { uid: bench-client, name: client, namespace: bench, workloadIps: [${CLIENT_WL}], node: bench-node, canonicalName: client, canonicalRevision: v1 }
services:
  - { name: svc, namespace: bench, hostname: svc.bench.svc.cluster.local, vips: ["/10.96.0.10"], ports: { 80: 8080 } }
`,
    );
    const mainJs = path.resolve(__dirname, '../src/cli/main.js');
    procs.spawn('proxy', process.execPath, [mainJs, 'node'], {
      logPath: path.join(dir, 'proxy.log'),
      env: {
        PATH: process.env['PATH'],
        LOG_LEVEL: 'error',
        NODE_NAME: 'bench-node',
        LOCAL_XDS_PATH: localXds,
        DNS_CAPTURE: 'true',
        DNS_PROXY_ADDR: `:${PROXY_PORT}`,
        DNS_UPSTREAMS: `${UPSTREAM.ip}:${UPSTREAM.port}`,
        OUTBOUND_ADDR: '',
        INBOUND_ADDR: '',
        INBOUND_PLAINTEXT_ADDR: '',
        ADMIN_ADDR: `${ip(1)}:15000`,
        STATS_ADDR: `${ip(1)}:15020`,
        READINESS_ADDR: `${ip(1)}:15021`,
        CA_ADDRESS: `https://${ip(1)}:9`,
      },
    });
    const proxy = { ip: CLIENT_WL, port: PROXY_PORT };
    await waitAnswer(UPSTREAM, 'outside.bench', 'upstream dnsmasq');
    await waitAnswer(DNSMASQ, 'svc.bench.local', 'dnsmasq');
    await waitAnswer(proxy, 'svc.bench.svc.cluster.local', 'ztunnel-ts DNS proxy');
    const targets: Target[] = [
      { name: 'ztunnel-ts local', kind: 'local', server: proxy, qname: 'svc.bench.svc.cluster.local', expect: '10.96.0.10' },
      { name: 'dnsmasq local', kind: 'local', server: DNSMASQ, qname: 'svc.bench.local', expect: '10.96.0.10' },
      { name: 'ztunnel-ts forwarded', kind: 'forwarded', server: proxy, qname: 'outside.bench', expect: '192.0.2.7' },
      { name: 'dnsmasq forwarded', kind: 'forwarded', server: DNSMASQ, qname: 'outside.bench', expect: '192.0.2.7' },
      { name: 'upstream direct', kind: 'upstream', server: UPSTREAM, qname: 'outside.bench', expect: '192.0.2.7' },
    ];
    const results = new Map<string, Trial[]>(targets.map((t) => [t.name, []]));
    for (let i = 0; i < trials; i++) {
      for (const t of targets) {
        const r = await load(t, seconds, window);
        results.get(t.name)!.push(r);
        process.stderr.write(`trial ${i + 1}/${trials} ${t.name}: ${fmtNum(r.qps)} q/s p50 ${fmtNum(r.p50ms)} ms p99 ${fmtNum(r.p99ms)} ms errors ${r.errors}\n`);
      }
    }
    const sum = (name: string, k: keyof Trial): Summary | null => summarize(results.get(name)!.map((r) => r[k]));
    const med = (name: string): number => sum(name, 'qps')?.median ?? NaN;
    console.log(`\nDNS queries/s over UDP (${trials} trials × ${seconds}s, ${window} queries in flight, medians [min–max])\n`);
    console.log(['target'.padEnd(22), 'queries/s'.padStart(22), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'errors'.padStart(7), '  vs dnsmasq'].join(' '));
    for (const t of targets) {
      const q = sum(t.name, 'qps')!;
      const peer = t.kind === 'local' ? 'dnsmasq local' : t.kind === 'forwarded' ? 'dnsmasq forwarded' : null;
      const ratio = peer && peer !== t.name ? `${(q.median / med(peer)).toFixed(2)}×` : '';
      const errors = results.get(t.name)!.reduce((a, r) => a + r.errors, 0);
      console.log([t.name.padEnd(22), `${fmtNum(q.median)} [${fmtNum(q.min)}–${fmtNum(q.max)}]`.padStart(22), fmtNum(sum(t.name, 'p50ms')!.median).padStart(8), fmtNum(sum(t.name, 'p99ms')!.median).padStart(8), String(errors).padStart(7), `  ${ratio}`].join(' '));
    }
    const out = path.resolve(__dirname, '../../bench/results');
    mkdirSync(out, { recursive: true });
    const file = path.join(out, `dns-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ seconds, trials, window, dnsmasq: dnsmasqVersion, node: process.version, results: Object.fromEntries(results) }, null, 2));
    console.log(`\nresults: ${file}`);
  } finally {
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
