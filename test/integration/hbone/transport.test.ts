import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { createLogger } from '../../../src/logging/logger';
import { SpiffeId } from '../../../src/identity/spiffe';
import type { WorkloadCertificate } from '../../../src/identity/types';
import { createHboneTransport, type HboneTransport } from '../../../src/transport/hbone-transport';
import { DEFAULT_SOCKET_OPTIONS } from '../../../src/transport/socket-opts';
import type { InboundConnect } from '../../../src/transport/hbone/types';
import { systemClock } from '../../../src/util/clock';
import { makeSocketAddr, type SocketAddr } from '../../../src/util/socket-addr';
import { LogCollector } from '../../helpers/log-collector';
import { StaticCerts, TestCa } from './certs-helper';
import { closeServer, listen, readAll, startApp } from './fixture';

const TD = 'cluster.local';
const NODE_ID = `spiffe://${TD}/ns/default/sa/client`;
const WAYPOINT_ID = `spiffe://${TD}/ns/shop/sa/waypoint`;

interface Role {
  readonly transport: HboneTransport;
  readonly hboneAddr: SocketAddr;
  /** CONNECTs its server accepted, with the peer identity it verified. */
  readonly seen: InboundConnect[];
}

/** One role's transport from plain options only (its own certificate, no node config), served on loopback. */
async function role(t: ExecutionContext, cert: WorkloadCertificate): Promise<Role> {
  const seen: InboundConnect[] = [];
  const transport = createHboneTransport({
    logger: createLogger({ level: 'warn', format: 'json', destination: new LogCollector() }),
    clock: systemClock,
    certs: new StaticCerts().add(cert),
    resolveCert: async () => cert,
    onConnect: (req) => {
      seen.push(req);
      const up = net.connect({ host: req.authority.ip, port: req.authority.port, allowHalfOpen: true });
      up.once('error', () => req.reject(503, 'CONNECT'));
      up.once('connect', () => {
        const stream = req.accept();
        stream.pipe(up);
        up.pipe(stream);
      });
    },
    connectTimeout: 2000,
    handshakeTimeout: 2000,
    firstHeadersTimeout: 2000,
    socket: DEFAULT_SOCKET_OPTIONS,
  });
  const lsn = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    transport.server.handleSocket(s, makeSocketAddr(s.localAddress ?? '127.0.0.1', s.localPort ?? 0));
  });
  const hboneAddr = await listen(lsn);
  t.teardown(async () => {
    transport.client.destroy();
    transport.server.destroy();
    await closeServer(lsn);
  });
  return { transport, hboneAddr, seen };
}

/**
 * Two roles build their transports from plain options, each with its own identity (a
 * workload's node proxy and a waypoint). Real TLS 1.3 + HTTP/2 both ways: each client
 * verifies the other side's identity and each server sees the caller's from its certificate.
 */
test('createHboneTransport: two roles, each with its own identity, tunnel to each other from plain options', async (t) => {
  const ca = new TestCa();
  t.teardown(() => ca.cleanup());
  const node = await role(t, ca.issue([NODE_ID]));
  const waypoint = await role(t, ca.issue([WAYPOINT_ID]));
  const app = await startApp(t, (s) => s.pipe(s));

  const cases = [
    { from: node, fromId: NODE_ID, to: waypoint, toId: WAYPOINT_ID },
    { from: waypoint, fromId: WAYPOINT_ID, to: node, toId: NODE_ID },
  ];
  for (const c of cases) {
    const hs = await c.from.transport.client.connect({
      nextHop: c.to.hboneAddr,
      authority: `${app.ip}:${app.port}`,
      expectedIdentities: [c.toId],
      srcIdentity: SpiffeId.parse(c.fromId),
      peerUid: `uid-of-${c.toId}`,
      headers: {},
    });
    t.is(hs.peerIdentity.toString(), c.toId, `${c.fromId} verified ${c.toId}`);
    hs.stream.end(`hello from ${c.fromId}`);
    t.is((await readAll(hs.stream)).toString(), `hello from ${c.fromId}`);
    t.is(c.to.seen.length, 1);
    t.is(c.to.seen[0]!.peerIdentity.toString(), c.fromId, `${c.toId} saw the caller's certificate identity`);
    t.deepEqual(c.to.seen[0]!.authority, app);
  }
});

test('createHboneTransport: a client expecting another identity refuses the server (the identity is the role\'s own)', async (t) => {
  const ca = new TestCa();
  t.teardown(() => ca.cleanup());
  const node = await role(t, ca.issue([NODE_ID]));
  const waypoint = await role(t, ca.issue([WAYPOINT_ID]));
  const err = await t.throwsAsync(
    node.transport.client.connect({
      nextHop: waypoint.hboneAddr,
      authority: '127.0.0.1:9',
      expectedIdentities: [`spiffe://${TD}/ns/shop/sa/someone-else`],
      srcIdentity: SpiffeId.parse(NODE_ID),
      peerUid: 'uid-x',
      headers: {},
    }),
  );
  t.is((err as { reason?: string }).reason, 'TLS_PEER_IDENTITY');
  t.is(waypoint.seen.length, 0);
});
