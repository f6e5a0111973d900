import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PathDef, Availability } from './types';
import { benchAddr } from './addr';
import { freePort, waitForTcp } from '../lib/net-util';
import { ManagedProc } from '../lib/managed';
import { startTwoHop } from './two-hop';

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 5000 }, (err, stdout, stderr) => (err ? reject(err) : resolve(`${stdout}${stderr}`)));
  });
}

const GLOBAL = (name: string): string => `global
  maxconn 9000
  # one thread per hop, like one single-threaded Node proxy per hop
  nbthread 1
  # no TLS session cache or tickets: every connection is a full handshake (ztunnel disables resumption)
  tune.ssl.cachesize 0
  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
  ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets
  node ${name}
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  maxconn 9000
`;

/**
 * Two-hop mTLS tunnel with haproxy: plaintext TCP into hop A, TLS 1.3 with a client
 * certificate from A to B, B verifies it against the dev root and forwards to the server.
 */
export const haproxy: PathDef = {
  id: 'haproxy',
  async available(): Promise<Availability> {
    try {
      const out = await run('haproxy', ['-v']);
      return { ok: true, version: (/HAProxy version (\S+)/.exec(out)?.[1] ?? out.split('\n')[0] ?? '').trim() };
    } catch {
      return { ok: false, reason: 'haproxy is not installed (apt-get install haproxy)' };
    }
  },
  async start(ctx) {
    const hostA = benchAddr(1, 1);
    const hostB = benchAddr(1, 2);
    const server = await ctx.server.listen(benchAddr(1, 3));
    const portA = await freePort(hostA);
    const portB = await freePort(hostB);
    const { pki } = ctx;
    const a = pki.leaves['hop-a']!;
    const b = pki.leaves['hop-b']!;
    const cfgA = path.join(ctx.dir, 'haproxy-a.cfg');
    const cfgB = path.join(ctx.dir, 'haproxy-b.cfg');
    writeFileSync(
      cfgA,
      `${GLOBAL('hop-a')}frontend fe\n  bind ${hostA}:${portA}\n  default_backend be\nbackend be\n  server b ${hostB}:${portB} ssl crt ${a.combined} ca-file ${pki.rootCert} verify required no-ssl-reuse source ${hostA}\n`,
    );
    writeFileSync(
      cfgB,
      `${GLOBAL('hop-b')}frontend fe\n  bind ${hostB}:${portB} ssl crt ${b.combined} ca-file ${pki.rootCert} verify required\n  default_backend be\nbackend be\n  server s ${server.host}:${server.port} source ${hostB}\n`,
    );
    const hopB = new ManagedProc(ctx.procs, { name: 'haproxy-b', cmd: 'haproxy', args: ['-f', cfgB, '-db'], logPath: path.join(ctx.dir, 'haproxy-b.log'), ready: (alive) => waitForTcp({ host: hostB, port: portB }, 5000, alive) });
    const hopA = new ManagedProc(ctx.procs, { name: 'haproxy-a', cmd: 'haproxy', args: ['-f', cfgA, '-db'], logPath: path.join(ctx.dir, 'haproxy-a.log'), ready: (alive) => waitForTcp({ host: hostA, port: portA }, 5000, alive) });
    return startTwoHop('haproxy', hopA, hopB, { first: { host: hostA, port: portA }, localAddress: benchAddr(1, 9) }, `client → haproxy ${hostA}:${portA} (tcp) → mTLS 1.3 → haproxy ${hostB}:${portB} → server ${server.port}`);
  },
};
