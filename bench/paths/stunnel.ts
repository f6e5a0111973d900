import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PathDef, Availability } from './types';
import { benchAddr } from './addr';
import { freePort, waitForTcp } from '../lib/net-util';
import { ManagedProc } from '../lib/managed';
import { startTwoHop } from './two-hop';

const BINARIES = ['stunnel4', 'stunnel'];

function version(bin: string): Promise<string | null> {
  return new Promise((resolve) => {
    // `stunnel -version` prints to stderr and exits non-zero on some builds.
    execFile(bin, ['-version'], { timeout: 5000 }, (_err, stdout, stderr) => {
      const m = /stunnel (\d+\.\d+)/.exec(`${stdout}${stderr}`);
      resolve(m ? m[1]! : null);
    });
  });
}

async function findBinary(): Promise<{ bin: string; version: string } | null> {
  for (const bin of BINARIES) {
    const v = await version(bin);
    if (v) return { bin, version: v };
  }
  return null;
}

const COMMON = (log: string): string => `foreground = yes
pid =
debug = 3
output = ${log}
`;

/** The same two-hop shape with stunnel: client mode (A) → TLS 1.3 mTLS → server mode (B). */
export const stunnel: PathDef = {
  id: 'stunnel',
  async available(): Promise<Availability> {
    const f = await findBinary();
    return f ? { ok: true, version: f.version } : { ok: false, reason: 'stunnel4 is not installed (apt-get install stunnel4)' };
  },
  async start(ctx) {
    const found = await findBinary();
    if (!found) throw new Error('stunnel4 is not installed');
    const hostA = benchAddr(2, 1);
    const hostB = benchAddr(2, 2);
    const server = await ctx.server.listen(benchAddr(2, 3));
    const portA = await freePort(hostA);
    const portB = await freePort(hostB);
    const a = ctx.pki.leaves['hop-a']!;
    const b = ctx.pki.leaves['hop-b']!;
    const cfgA = path.join(ctx.dir, 'stunnel-a.conf');
    const cfgB = path.join(ctx.dir, 'stunnel-b.conf');
    writeFileSync(
      cfgA,
      `${COMMON(path.join(ctx.dir, 'stunnel-a.out'))}[hop-a]\nclient = yes\naccept = ${hostA}:${portA}\nconnect = ${hostB}:${portB}\nlocal = ${hostA}\ncert = ${a.cert}\nkey = ${a.key}\nCAfile = ${ctx.pki.rootCert}\nverifyChain = yes\nsslVersionMin = TLSv1.3\nsessionResume = no\n`,
    );
    writeFileSync(
      cfgB,
      `${COMMON(path.join(ctx.dir, 'stunnel-b.out'))}[hop-b]\naccept = ${hostB}:${portB}\nconnect = ${server.host}:${server.port}\nlocal = ${hostB}\ncert = ${b.cert}\nkey = ${b.key}\nCAfile = ${ctx.pki.rootCert}\nverifyChain = yes\nrequireCert = yes\nsslVersionMin = TLSv1.3\nsessionResume = no\n`,
    );
    const hopB = new ManagedProc(ctx.procs, { name: 'stunnel-b', cmd: found.bin, args: [cfgB], logPath: path.join(ctx.dir, 'stunnel-b.log'), ready: (alive) => waitForTcp({ host: hostB, port: portB }, 5000, alive) });
    const hopA = new ManagedProc(ctx.procs, { name: 'stunnel-a', cmd: found.bin, args: [cfgA], logPath: path.join(ctx.dir, 'stunnel-a.log'), ready: (alive) => waitForTcp({ host: hostA, port: portA }, 5000, alive) });
    return startTwoHop('stunnel', hopA, hopB, { first: { host: hostA, port: portA }, localAddress: benchAddr(2, 9) }, `client → stunnel ${hostA}:${portA} (client mode) → mTLS 1.3 → stunnel ${hostB}:${portB} → server ${server.port}`);
  },
};
