import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { NetnsAddon, PollHandle } from './netns-addon';
import { closeQuietly } from './pod-netns';
import { ZDS_V1, type ZdsCodec, type ZdsRequest } from './zds-codec';

/** A pod as the agent knows it: the request to send and the namespace descriptor to attach. */
export interface AgentPodEntry {
  readonly uid: string;
  readonly request: ZdsRequest & { kind: 'add' };
  /** The agent's own descriptor of the pod's namespace (the kernel duplicates it for the receiver). */
  readonly netnsFd: number;
}

interface Outgoing {
  readonly data: Buffer;
  readonly fds: readonly number[];
  readonly label: string;
  readonly done: (error: string | null) => void;
}

/**
 * One node proxy connected to the agent. After its ZdsHello (V1 only; anything else is
 * refused and the connection closed) it gets the snapshot: an add per known pod, then
 * snapshot_sent. Requests go one at a time: the next is sent only after the previous ack,
 * as istio-cni does.
 */
class AgentConnection {
  private poll: PollHandle | null;
  private helloSeen = false;
  private readonly queue: Outgoing[] = [];
  private inflight: Outgoing | null = null;
  private closed = false;
  readonly id: number;

  constructor(
    private readonly server: ZdsServer,
    private readonly fd: number,
    id: number,
  ) {
    this.id = id;
    this.poll = server.addon.pollStart(fd, (error) => this.onReadable(error));
  }

  get ready(): boolean {
    return this.helloSeen && !this.closed;
  }

  /** Queues one request; resolves with the ack's error ('' = success) or null if the connection went away. */
  send(data: Buffer, fds: readonly number[], label: string): Promise<string | null> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(null);
      this.queue.push({ data, fds, label, done: resolve });
      this.pump();
    });
  }

  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.poll) this.server.addon.pollStop(this.poll);
    this.poll = null;
    closeQuietly(this.fd);
    this.inflight?.done(null);
    for (const q of this.queue.splice(0)) q.done(null);
    this.inflight = null;
    this.server.connectionClosed(this, why);
  }

  private pump(): void {
    if (this.closed || this.inflight || !this.helloSeen) return;
    const next = this.queue.shift();
    if (!next) return;
    this.inflight = next;
    try {
      this.server.addon.seqpacketSend(this.fd, next.data, next.fds);
    } catch (err) {
      this.close(`sending ${next.label} failed: ${(err as Error).message}`);
    }
  }

  private onReadable(error: string | null): void {
    if (error) return this.close(`socket error: ${error}`);
    for (;;) {
      let m;
      try {
        m = this.server.addon.seqpacketRecv(this.fd, 4096, 0);
      } catch (err) {
        return this.close(`read failed: ${(err as Error).message}`);
      }
      if (m === null) return;
      if (m.data.length === 0 && !m.truncated) return this.close('the node proxy closed the connection');
      if (m.truncated) return this.close('truncated message from the node proxy');
      if (!this.helloSeen) {
        let version: number;
        try {
          version = this.server.codec.decodeHello(m.data);
        } catch (err) {
          return this.close(`malformed ZdsHello: ${(err as Error).message}`);
        }
        if (version !== ZDS_V1) return this.close(`unsupported ZDS version ${version} in ZdsHello (this agent speaks V1 = ${ZDS_V1})`);
        this.helloSeen = true;
        this.server.sendSnapshot(this);
        continue;
      }
      const cur = this.inflight;
      if (!cur) return this.close('an ack arrived with no request outstanding');
      let error2: string;
      try {
        error2 = this.server.codec.decodeAck(m.data);
      } catch (err) {
        return this.close(`malformed WorkloadResponse: ${(err as Error).message}`);
      }
      this.inflight = null;
      cur.done(error2);
      this.pump();
    }
  }
}

export interface ZdsServerOptions {
  readonly addon: NetnsAddon;
  readonly codec: ZdsCodec;
  /** The socket path (INPOD_UDS); a stale socket file there is replaced. */
  readonly path: string;
  readonly logger: Logger;
  /** The pods to put in a new connection's snapshot, in order. */
  readonly snapshot: () => readonly AgentPodEntry[];
}

/**
 * The agent's ZDS listener: a SOCK_SEQPACKET Unix socket accepting node proxies (several
 * at once during a rolling update: each gets its own snapshot and every later change).
 */
export class ZdsServer {
  readonly addon: NetnsAddon;
  readonly codec: ZdsCodec;
  private fd = -1;
  private poll: PollHandle | null = null;
  private readonly conns = new Set<AgentConnection>();
  private seq = 0;

  constructor(private readonly o: ZdsServerOptions) {
    this.addon = o.addon;
    this.codec = o.codec;
  }

  start(): void {
    try {
      if (fs.statSync(this.o.path).isSocket()) fs.unlinkSync(this.o.path);
    } catch {
      // no stale socket to replace
    }
    this.fd = this.addon.seqpacketListen(this.o.path, 64);
    this.poll = this.addon.pollStart(this.fd, () => this.acceptAll());
    this.o.logger.info({ socket: this.o.path }, 'serving ZDS');
  }

  /** Node proxies that finished their hello. */
  get connections(): number {
    return [...this.conns].filter((c) => c.ready).length;
  }

  /** Sends one request to every connected node proxy; resolves with their ack errors (connections that went away are skipped). */
  async broadcast(req: ZdsRequest, fds: readonly number[]): Promise<string[]> {
    const data = this.codec.encodeRequest(req);
    const label = 'uid' in req ? `${req.kind} ${req.uid}` : req.kind;
    const results = await Promise.all([...this.conns].filter((c) => c.ready).map((c) => c.send(data, fds, label)));
    return results.filter((r): r is string => r !== null && r !== '');
  }

  sendSnapshot(c: AgentConnection): void {
    const pods = this.o.snapshot();
    for (const p of pods) void c.send(this.codec.encodeRequest(p.request), [p.netnsFd], `add ${p.uid}`).then((e) => this.logAck(c, `add ${p.uid}`, e));
    void c.send(this.codec.encodeRequest({ kind: 'snapshot_sent' }), [], 'snapshot_sent').then((e) => this.logAck(c, 'snapshot_sent', e));
    this.o.logger.info({ connection: c.id, pods: pods.length }, 'node proxy connected: snapshot queued');
  }

  connectionClosed(c: AgentConnection, why: string): void {
    this.conns.delete(c);
    this.o.logger.info({ connection: c.id, why }, 'node proxy connection closed');
  }

  close(): void {
    for (const c of [...this.conns]) c.close('agent shutting down');
    if (this.poll) this.addon.pollStop(this.poll);
    this.poll = null;
    if (this.fd >= 0) closeQuietly(this.fd);
    this.fd = -1;
    try {
      fs.unlinkSync(this.o.path);
    } catch {
      // already gone
    }
  }

  private acceptAll(): void {
    for (;;) {
      let fd: number;
      try {
        fd = this.addon.seqpacketAccept(this.fd);
      } catch (err) {
        this.o.logger.warn({ error: (err as Error).message }, 'accepting a ZDS connection failed');
        return;
      }
      if (fd < 0) return;
      this.conns.add(new AgentConnection(this, fd, ++this.seq));
    }
  }

  private logAck(c: AgentConnection, what: string, error: string | null): void {
    if (error) this.o.logger.warn({ connection: c.id, request: what, error }, 'node proxy rejected a request');
  }
}
