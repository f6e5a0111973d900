import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SpiffeId } from '../identity/spiffe';
import type { Endpoint } from './l7/decide';
import { dialTcp, type DialPreparer } from '../transport/dial';
import type { HboneClient } from '../transport/hbone/types';
import { formatSocketAddr, makeSocketAddr } from '../util/socket-addr';
import { StreamSocket } from './stream-socket';

export interface UpstreamOptions {
  readonly hbone: HboneClient;
  /** The waypoint's own identity: the client certificate of every upstream HBONE connection. */
  readonly identity: SpiffeId;
  /** Source address for upstream connections (the waypoint pod IP on loopback meshes), or undefined. */
  readonly localAddress: string | undefined;
  readonly hbonePort: number;
  readonly connectTimeoutMs: number;
  readonly prepareDial: DialPreparer;
}

/** A DestinationRule's connection-pool settings for upstream HTTP connections (null = no limit). */
export interface PoolLimits {
  readonly idleTimeoutMs: number | null;
  readonly maxRequestsPerConnection: number | null;
}

/** A raw connection to one endpoint and who answered it (verified SPIFFE id; null for plain TCP). */
export interface UpstreamConn {
  readonly socket: StreamSocket;
  readonly peerIdentity: SpiffeId | null;
}

/**
 * Connections from the waypoint to chosen endpoints. Each endpoint (workload uid +
 * ip:targetPort) gets one keep-alive http.Agent for HTTP/1.1 and one HTTP/2 session for
 * h2c/gRPC, so HTTP connections are reused across requests; each of those rides one HBONE
 * CONNECT stream to endpointIP:15008 with :authority endpointIP:targetPort, presenting the
 * waypoint's own certificate and accepting only the endpoint's expected SANs (the HBONE
 * pool shares the TLS connection across streams). Plain-TCP endpoints are dialled directly.
 */
export class Upstreams {
  private readonly agents = new Map<string, { uid: string; agent: http.Agent }>();
  private readonly sessions = new Map<string, { uid: string; session: Promise<http2.ClientHttp2Session>; streams: number }>();

  constructor(private readonly o: UpstreamOptions) {}

  /** A new tunnel to the endpoint (for upgrades and TCP). Rejects with ProxyError. */
  async connect(ep: Endpoint): Promise<UpstreamConn> {
    if (!ep.hbone) {
      const s: Socket = await dialTcp(makeSocketAddr(ep.ip, ep.targetPort), { timeoutMs: this.o.connectTimeoutMs, localAddress: this.o.localAddress, prepare: this.o.prepareDial });
      return { socket: new StreamSocket(s as Duplex, { ip: ep.ip, port: ep.targetPort }), peerIdentity: null };
    }
    const st = await this.o.hbone.connect({
      nextHop: makeSocketAddr(ep.ip, this.o.hbonePort),
      authority: formatSocketAddr({ ip: ep.ip, port: ep.targetPort }),
      expectedIdentities: ep.expectedIdentities,
      srcIdentity: this.o.identity,
      peerUid: ep.workload.uid,
      headers: {},
      ...(this.o.localAddress ? { localAddress: this.o.localAddress } : {}),
    });
    const socket = new StreamSocket(st.stream, { ip: ep.ip, port: ep.targetPort });
    socket.peerIdentity = st.peerIdentity;
    return { socket, peerIdentity: st.peerIdentity };
  }

  /**
   * The keep-alive HTTP/1.1 agent of an endpoint. With pool limits (a DestinationRule's
   * connectionPool.http) the endpoint gets a separate agent whose idle connections close
   * after idleTimeout and whose connections close after maxRequestsPerConnection requests.
   */
  agent(ep: Endpoint, limits: PoolLimits | null = null): http.Agent {
    const idle = limits?.idleTimeoutMs ?? null;
    const perConn = limits?.maxRequestsPerConnection ?? null;
    const key = idle === null && perConn === null ? endpointKey(ep) : `${endpointKey(ep)}|idle=${idle}|max=${perConn}`;
    const cur = this.agents.get(key);
    if (cur) return cur.agent;
    const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo' });
    if (perConn === null && idle === null) agent.keepSocketAlive = keepIdleSocket;
    else {
      const served = new WeakMap<object, number>();
      // Called when a request on the socket is done: false closes it instead of pooling it.
      agent.keepSocketAlive = (socket) => {
        const n = (served.get(socket) ?? 0) + 1;
        served.set(socket, n);
        return (perConn === null || n < perConn) && keepIdleSocket(socket, idle);
      };
    }
    // The async form of createConnection: the Agent waits for the callback.
    (agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: Duplex) => void) => undefined }).createConnection = (_o, cb) => {
      this.connect(ep).then(
        (c) => {
          // When the endpoint closes an idle keep-alive connection its FIN must close the
          // socket, so the agent drops it instead of reusing a half-closed tunnel.
          c.socket.allowHalfOpen = false;
          cb(null, c.socket);
        },
        (err: Error) => cb(err),
      );
      return undefined;
    };
    this.agents.set(key, { uid: ep.workload.uid, agent });
    return agent;
  }

  /**
   * The endpoint's HTTP/2 session (prior knowledge over the tunnel), opened on first use.
   * With pool limits the session closes when idle for idleTimeout, and after
   * maxRequestsPerConnection streams it takes no more (the next request opens a new one).
   */
  session(ep: Endpoint, limits: PoolLimits | null = null): Promise<http2.ClientHttp2Session> {
    const idle = limits?.idleTimeoutMs ?? null;
    const perConn = limits?.maxRequestsPerConnection ?? null;
    const key = idle === null && perConn === null ? endpointKey(ep) : `${endpointKey(ep)}|idle=${idle}|max=${perConn}`;
    const cur = this.sessions.get(key);
    if (cur) {
      if (perConn !== null && ++cur.streams >= perConn) retire(this.sessions, key, cur.session);
      return cur.session;
    }
    const p = this.connect(ep).then((c) => {
      const s = http2.connect(`http://${formatSocketAddr({ ip: ep.ip, port: ep.targetPort })}`, { createConnection: () => c.socket });
      (s as unknown as { peerIdentity: SpiffeId | null }).peerIdentity = c.peerIdentity;
      if (idle !== null) s.setTimeout(idle, () => s.close());
      const drop = (): void => {
        if (this.sessions.get(key)?.session === p) this.sessions.delete(key);
      };
      s.on('close', drop);
      s.on('goaway', drop);
      s.on('error', drop);
      return s;
    });
    p.catch(() => {
      if (this.sessions.get(key)?.session === p) this.sessions.delete(key);
    });
    this.sessions.set(key, { uid: ep.workload.uid, session: p, streams: 1 });
    if (perConn === 1) retire(this.sessions, key, p);
    return p;
  }

  /** Drops agents and sessions of a workload that changed or left. */
  evict(uid: string): void {
    for (const [k, a] of this.agents) {
      if (a.uid !== uid) continue;
      this.agents.delete(k);
      a.agent.destroy();
    }
    for (const [k, s] of this.sessions) {
      if (s.uid !== uid) continue;
      this.sessions.delete(k);
      s.session.then((x) => x.close(), () => undefined);
    }
  }

  /** Graceful: sessions get GOAWAY, idle keep-alive sockets close. */
  close(): void {
    for (const a of this.agents.values()) a.agent.destroy();
    for (const s of this.sessions.values()) s.session.then((x) => x.close(), () => undefined);
    this.agents.clear();
    this.sessions.clear();
  }

  destroy(): void {
    for (const a of this.agents.values()) a.agent.destroy();
    for (const s of this.sessions.values()) s.session.then((x) => x.destroy(), () => undefined);
    this.agents.clear();
    this.sessions.clear();
  }

  dump(): unknown {
    return { http1Endpoints: [...this.agents.keys()], http2Endpoints: [...this.sessions.keys()] };
  }
}

/**
 * Replaces http.Agent's keepSocketAlive. Node's Agent refuses to pool a connection whose
 * server announced `Keep-Alive: timeout=1` (it wants to drop a pooled socket a whole second
 * before the server would), and its idle timer relies on socket.setTimeout, which a tunnel
 * stream does not have. Against such an endpoint (Node's http server with
 * keepAliveTimeout ≤ 1s is common) every request then opened its own HBONE stream and
 * reset it after the response, thousands per second under load, which churns the pooled
 * HBONE connection the streams share. Here the socket is always pooled and dropped by the
 * waypoint after three quarters of the announced timeout (at most one second short of
 * it) unless a request took it meanwhile; without a hint it stays until the endpoint closes
 * it (its END_STREAM closes the socket at once, see allowHalfOpen above).
 */
function keepIdleSocket(socket: Duplex, maxIdleMs: number | null = null): boolean {
  const s = socket as Duplex & IdleTracked;
  // Each time the socket goes idle bumps the generation, so an older idle timer never fires on a newer idle period.
  const gen = (s[IDLE_GEN] = (s[IDLE_GEN] ?? 0) + 1);
  const hint = /^timeout=(\d+)/.exec(String(s._httpMessage?.res?.headers['keep-alive'] ?? ''))?.[1];
  const hintMs = hint === undefined ? null : Math.max(Number(hint) * 1000 - 1000, Number(hint) * 750);
  // A DestinationRule idleTimeout shortens the wait further.
  const budgetMs = hintMs === null ? maxIdleMs : maxIdleMs === null ? hintMs : Math.min(hintMs, maxIdleMs);
  if (budgetMs === null) return true;
  setTimeout(() => {
    if (s[IDLE_GEN] === gen && !s._httpMessage && !s.destroyed) s.destroy();
  }, budgetMs).unref();
  return true;
}

const IDLE_GEN = Symbol('idleGeneration');

/** What keepIdleSocket reads and marks on a pooled socket (node:http's own fields). */
interface IdleTracked {
  _httpMessage?: { res?: { headers: http.IncomingHttpHeaders } } | null;
  [IDLE_GEN]?: number;
}

/**
 * A session that reached maxRequestsPerConnection takes no new requests and closes once
 * its streams are done. The close waits a turn so the request it was just handed for is
 * opened first (a closing session refuses new streams).
 */
function retire(map: Map<string, { session: Promise<http2.ClientHttp2Session> }>, key: string, p: Promise<http2.ClientHttp2Session>): void {
  if (map.get(key)?.session === p) map.delete(key);
  p.then(
    (x) => setImmediate(() => x.close()),
    () => undefined,
  );
}

function endpointKey(ep: Endpoint): string {
  return `${ep.workload.uid}|${formatSocketAddr({ ip: ep.ip, port: ep.targetPort })}`;
}
