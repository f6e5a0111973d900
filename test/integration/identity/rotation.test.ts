import test from 'ava';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { inspect } from 'node:util';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { WorkloadCertificate } from '../../../src/identity/types';
import type { CertManager } from '../../../src/identity/cert-manager';
import { generateCsr, type CsrBundle } from '../../../src/identity/csr';
import { ManualClock, systemClock } from '../../../src/util/clock';
import { eventually, harness, identityConfig, manager } from './harness';

const APP = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/app');
const DB = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/db');

/**
 * An mTLS echo server that, like the HBONE server, takes the manager's CURRENT context for
 * each new handshake; established sockets keep the context they were made with.
 */
async function echoServer(t: import('ava').ExecutionContext, m: CertManager, id: SpiffeId): Promise<{ port: number; handshakes: () => number }> {
  let handshakes = 0;
  const sockets = new Set<Socket>();
  const server = createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    const cert = m.findCertificate(id);
    if (!cert) return void raw.destroy();
    const tls = new TLSSocket(raw, { isServer: true, secureContext: cert.secureContext, requestCert: true, rejectUnauthorized: true });
    tls.on('secure', () => handshakes++);
    tls.on('error', () => tls.destroy());
    tls.pipe(tls);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, handshakes: () => handshakes };
}

/** Client side: verifies the chain with the workload roots and the SPIFFE SAN itself. */
async function dial(port: number, client: WorkloadCertificate, expected: SpiffeId): Promise<TLSSocket> {
  const s = tlsConnect({
    host: '127.0.0.1',
    port,
    secureContext: client.secureContext,
    servername: 'hbone.invalid',
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => (cert.subjectaltname === `URI:${expected}` ? undefined : new Error(`peer is ${cert.subjectaltname}, expected ${expected}`)),
  });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  return s;
}

async function echo(s: TLSSocket, msg: string): Promise<string> {
  s.write(msg);
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString();
      if (got.length >= msg.length) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
  });
}

test('rotation: new handshakes present the new serial, an established connection stays up with the old one', async (t) => {
  const clock = new ManualClock(Date.now());
  const h = await harness(t);
  const { manager: m, logs } = manager(t, identityConfig(h.ca, { secretTtl: 3600_000 }), clock);
  const rotations: Array<[string, string | undefined]> = [];
  m.onRotate((c, prev) => rotations.push([c.serialNumber, prev?.serialNumber]));
  await m.waitForIdentities([APP, DB]);
  const serverCert1 = m.findCertificate(APP)!;
  const srv = await echoServer(t, m, APP);

  const old = await dial(srv.port, m.findCertificate(DB)!, APP);
  t.teardown(() => old.destroy());
  t.is(old.getPeerCertificate().serialNumber.toUpperCase(), serverCert1.serialNumber.toUpperCase());
  t.is(await echo(old, 'before'), 'before');

  clock.advance(31 * 60_000); // refresh at 50% lifetime, background priority
  t.true(await eventually(() => m.findCertificate(APP) !== serverCert1 && m.findCertificate(DB)?.serialNumber !== undefined && rotations.length === 4));
  const serverCert2 = m.findCertificate(APP)!;
  t.not(serverCert2.serialNumber, serverCert1.serialNumber);
  t.not(serverCert2.secureContext, serverCert1.secureContext, 'a new SecureContext per certificate');
  t.true(rotations.some(([now, prev]) => now === serverCert2.serialNumber && prev === serverCert1.serialNumber));
  t.is(logs.find((l) => l['msg'] === 'rotated workload certificate').length, 2);

  const fresh = await dial(srv.port, m.findCertificate(DB)!, APP);
  t.teardown(() => fresh.destroy());
  t.is(fresh.getPeerCertificate().serialNumber.toUpperCase(), serverCert2.serialNumber.toUpperCase(), 'new handshake uses the new certificate');
  t.is(await echo(fresh, 'fresh'), 'fresh');

  t.false(old.destroyed);
  t.is(await echo(old, 'still-open'), 'still-open', 'established connection still usable');
  t.is(old.getPeerCertificate().serialNumber.toUpperCase(), serverCert1.serialNumber.toUpperCase());
  t.is(srv.handshakes(), 2);
  t.log(`handshakes measured: ${srv.handshakes()} (1 before rotation, 1 after); rotations observed: ${rotations.length}`);
});

test('a client certificate from another identity is what the server sees (mTLS both ways)', async (t) => {
  const h = await harness(t);
  const { manager: m } = manager(t, identityConfig(h.ca), systemClock);
  await m.waitForIdentities([APP, DB]);
  let peer = '';
  let protocol = null as string | null;
  const srv = createServer((raw) => {
    const s = new TLSSocket(raw, { isServer: true, secureContext: m.findCertificate(APP)!.secureContext, requestCert: true, rejectUnauthorized: true });
    s.on('secure', () => {
      peer = s.getPeerCertificate().subjectaltname ?? '';
      protocol = s.getProtocol();
      s.end();
    });
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const c = await dial((srv.address() as AddressInfo).port, m.findCertificate(DB)!, APP);
  t.teardown(() => c.destroy());
  t.true(await eventually(() => peer !== ''));
  t.is(peer, `URI:${DB}`);
  t.is(protocol, 'TLSv1.3', 'minVersion TLSv1.3 in the workload context');
});

test('no private key material in any log line, dump, certificate object or error', async (t) => {
  const h = await harness(t);
  // Record the workload keys the manager generates, to search for them afterwards.
  const workloadKeys: string[] = [];
  const csrFactory = (id: SpiffeId): CsrBundle => {
    const b = generateCsr(id);
    workloadKeys.push(b.keyPem);
    return b;
  };
  const { manager: m, logs } = manager(t, identityConfig(h.ca), systemClock, { csrFactory });
  await m.waitForIdentities([APP, DB]);
  const refused = await t.throwsAsync(m.fetchCertificate(SpiffeId.parse('spiffe://cluster.local/ns/default/sa/other')));
  const cert = m.findCertificate(APP)!;
  const dumpJson = JSON.stringify(m.dump());
  const texts = [logs.text(), h.caLogs.text(), dumpJson, JSON.stringify(cert), inspect(cert, { depth: 5, showHidden: true }), JSON.stringify(m.dump().map((d) => d.lastError)), inspect(refused, { depth: 6 })];
  const keys = [readFileSync(`${h.dir}/ca/root-key.pem`, 'utf8'), ...workloadKeys];
  t.is(workloadKeys.length, 3, 'app, db and the refused other');
  for (const pem of keys) {
    const body = pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const d = createPrivateKey(pem).export({ format: 'jwk' }).d as string;
    const forms = [body.slice(0, 40), body.slice(-40), d, Buffer.from(d, 'base64url').toString('hex'), Buffer.from(d, 'base64url').toString('base64')];
    for (const s of texts) {
      t.notRegex(s, /PRIVATE KEY/);
      for (const f of forms) t.false(s.includes(f), 'raw key material must not appear');
    }
  }
  t.deepEqual(Object.keys(cert).sort(), ['chainPem', 'identity', 'notAfter', 'notBefore', 'rootsPem', 'secureContext', 'serialNumber']);
  const d = m.dump().find((e) => e.identity === APP.toString())!;
  t.is(d.state, 'available');
  t.is(d.serialNumber, cert.serialNumber);
  t.is(d.certChain.length, 1);
  t.is(d.rootCerts[0], h.ca.rootPem);
  t.truthy(d.validFrom && d.expirationTime);
  t.true(logs.lines.length > 0 && h.caLogs.lines.length > 0, 'logs were captured');
});
