import * as net from 'node:net';
import type { ExecutionContext } from 'ava';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { WorkloadCertificate } from '../../../src/identity/types';
import { HbonePool, type HbonePoolOptions } from '../../../src/transport/hbone/pool';
import { HboneServer, type HboneServerOptions } from '../../../src/transport/hbone/server';
import type { HboneTarget, InboundConnect } from '../../../src/transport/hbone/types';
import { splice } from '../../../src/transport/splice';
import { formatSocketAddr, makeSocketAddr, type SocketAddr } from '../../../src/util/socket-addr';
import { StaticCerts, TestCa } from './certs-helper';

export const TD = 'cluster.local';
export const SERVER_ID = `spiffe://${TD}/ns/default/sa/server`;
export const CLIENT_ID = `spiffe://${TD}/ns/default/sa/client`;

export function listen(server: net.Server, host = '127.0.0.1'): Promise<SocketAddr> {
  track(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const a = server.address() as net.AddressInfo;
      resolve(makeSocketAddr(a.address, a.port));
    });
  });
}

const tracked = new WeakMap<net.Server, Set<net.Socket>>();

/** Remembers a server's sockets so teardown can destroy stragglers instead of hanging in close(). */
export function track(server: net.Server): net.Server {
  const set = new Set<net.Socket>();
  tracked.set(server, set);
  server.on('connection', (s: net.Socket) => {
    set.add(s);
    s.once('close', () => set.delete(s));
  });
  return server;
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of tracked.get(server) ?? []) s.destroy();
  });
}

/** An app server: every accepted socket (allowHalfOpen) goes to `onSocket`. */
export async function startApp(t: ExecutionContext, onSocket: (s: net.Socket) => void): Promise<SocketAddr> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  const addr = await listen(srv);
  t.teardown(() => closeServer(srv));
  return addr;
}

/** Echo with half-close: echoes until the client's FIN, then sends its own FIN. */
export function echo(s: net.Socket): void {
  s.pipe(s);
}

export interface HboneSide {
  readonly ca: TestCa;
  readonly serverCert: WorkloadCertificate;
  readonly clientCert: WorkloadCertificate;
  readonly certs: StaticCerts;
  readonly logs: LogCollector;
  readonly server: HboneServer;
  /** The 15008-style listener feeding the server. */
  readonly hboneAddr: SocketAddr;
  readonly pool: HbonePool;
  target(authority: SocketAddr | string, over?: Partial<HboneTarget>): HboneTarget;
}

export interface HboneSideOptions {
  pool?: Partial<HbonePoolOptions>;
  server?: Partial<HboneServerOptions>;
  /** Replaces the default node-proxy-like handler (dial authority, accept, splice). */
  onConnect?: (req: InboundConnect) => void;
  ca?: TestCa;
  /** Sees (and may hold) every server-side certificate lookup: one per TLS handshake. */
  wrapServerCert?: <C>(cert: C) => Promise<C>;
}

/**
 * Real TLS + HTTP/2 on loopback: client pool → listener → HboneServer → handler that
 * does what the node proxy does (dial the authority, accept only after the dial, splice).
 */
export async function startHbone(t: ExecutionContext, o: HboneSideOptions = {}): Promise<HboneSide> {
  const ca = o.ca ?? new TestCa();
  if (!o.ca) t.teardown(() => ca.cleanup());
  const serverCert = ca.issue([SERVER_ID]);
  const clientCert = ca.issue([CLIENT_ID]);
  const certs = new StaticCerts().add(clientCert);
  const logs = new LogCollector();
  const logger = createLogger({ level: 'debug', format: 'json', destination: logs });
  const onConnect =
    o.onConnect ??
    ((req: InboundConnect) => {
      const up = net.connect({ host: req.authority.ip, port: req.authority.port, allowHalfOpen: true });
      up.once('error', () => req.reject(503, 'CONNECT'));
      up.once('connect', () => {
        up.removeAllListeners('error');
        let stream;
        try {
          stream = req.accept();
        } catch {
          up.destroy();
          return;
        }
        void splice(stream, up);
      });
    });
  const wrap = o.wrapServerCert;
  const server = new HboneServer({ logger, resolveCert: async () => (wrap ? wrap(serverCert) : serverCert), onConnect, ...o.server });
  const lsn = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    server.handleSocket(s, makeSocketAddr(s.localAddress ?? '127.0.0.1', s.localPort ?? 0));
  });
  const hboneAddr = await listen(lsn);
  const pool = new HbonePool({ certs, logger, ...o.pool });
  t.teardown(async () => {
    pool.destroy();
    server.destroy();
    await closeServer(lsn);
  });
  return {
    ca, serverCert, clientCert, certs, logs, server, hboneAddr, pool,
    target: (authority, over = {}) => ({
      nextHop: hboneAddr,
      authority: typeof authority === 'string' ? authority : formatSocketAddr(authority),
      expectedIdentities: [SERVER_ID],
      srcIdentity: SpiffeId.parse(CLIENT_ID),
      peerUid: 'uid-server',
      headers: { traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-00' },
      ...over,
    }),
  };
}

/** Resolves when `pred` holds, polling every 10 ms, failing after `ms`. */
export async function eventually(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads a stream to the end; resolves with the bytes, or rejects with the stream's error. */
export function readAll(s: NodeJS.ReadableStream & { on(ev: 'error', fn: (e: Error) => void): unknown }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}
