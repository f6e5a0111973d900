import type { Logger } from 'pino';
import type { Component } from '../app/component';
import { Backoff } from '../util/backoff';
import type { Clock } from '../util/clock';
import type { NetnsAddon, PollHandle, SeqpacketMessage } from './netns-addon';
import { PodNetns, closeQuietly } from './pod-netns';
import type { WorkloadManager } from './workload-manager';
import type { ZdsCodec, ZdsRequest } from './zds-codec';

/** Largest request we accept: a WorkloadRequest is a uid and three names (ztunnel reads 1 KiB). */
const MAX_MESSAGE = 4096;
/** Room for one descriptor more than allowed, so "two descriptors" is reported as such. */
const MAX_FDS = 2;
/** Requests queued while one is being applied; an agent waits for each ack, so more is a broken peer. */
const MAX_QUEUE = 64;

export interface ZdsClientOptions {
  readonly addon: NetnsAddon;
  readonly codec: ZdsCodec;
  readonly manager: WorkloadManager;
  /** INPOD_UDS. */
  readonly path: string;
  /** PACKET_MARK for the sockets made in each pod. */
  readonly mark: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Readiness: called with false when (re)connecting, true once a snapshot is acknowledged. */
  readonly onReady: (ready: boolean) => void;
  /** Pending pods are retried this often (ztunnel: 5 s). */
  readonly retryPendingMs?: number;
}

/**
 * The node proxy's side of ZDS: connects to the node agent's SOCK_SEQPACKET socket
 * (INPOD_UDS), says ZdsHello{V1}, then applies each WorkloadRequest to the WorkloadManager
 * and answers each with WorkloadResponse{ack{error}}. The connection is the single writer
 * of the manager; requests are applied one at a time in arrival order.
 *
 * Errors in one message (truncated, malformed, a wrong number of descriptors, an unknown
 * payload) are answered with an ack carrying the error, every received descriptor is
 * closed, and the connection continues (message framing is intact on SEQPACKET). A closed
 * or failed connection is retried with backoff (10 ms doubling, cap 15 s, reset after a
 * snapshot); pods keep being served meanwhile, readiness is false until the next snapshot.
 */
export class ZdsClient implements Component {
  readonly name = 'zds';
  private fd = -1;
  private poll: PollHandle | null = null;
  private readonly queue: SeqpacketMessage[] = [];
  private busy = false;
  private closed = false;
  private reconnectTimer: ReturnType<Clock['setTimeout']> | null = null;
  private retryTimer: ReturnType<Clock['setTimeout']> | null = null;
  private readonly backoff = new Backoff({ initialMs: 10, maxMs: 15_000, multiplier: 2, jitter: 0 });
  private connections = 0;
  private lastError = '';

  constructor(private readonly o: ZdsClientOptions) {}

  /** Starts connecting; never fails (the agent may start later). Readiness tells when pods are in sync. */
  async start(): Promise<void> {
    this.o.onReady(false);
    this.connect();
    this.scheduleRetry();
  }

  /** Stops talking to the agent; the pods' listeners are closed by their owner's drain. */
  async close(): Promise<void> {
    this.closed = true;
    this.disconnect();
    if (this.reconnectTimer) this.o.clock.clearTimeout(this.reconnectTimer);
    if (this.retryTimer) this.o.clock.clearTimeout(this.retryTimer);
  }

  destroy(): void {
    void this.close();
  }

  dump(): unknown {
    return { socket: this.o.path, connected: this.fd >= 0, connections: this.connections, snapshot: this.o.manager.snapshotDone, pods: this.o.manager.podUids(), pending: this.o.manager.pendingUids(), lastError: this.lastError || null };
  }

  private connect(): void {
    if (this.closed) return;
    try {
      this.fd = this.o.addon.seqpacketConnect(this.o.path);
    } catch (err) {
      this.retryLater(`cannot connect to the node agent at ${this.o.path}: ${(err as Error).message}`);
      return;
    }
    try {
      this.o.addon.seqpacketSend(this.fd, this.o.codec.encodeHello(), []);
    } catch (err) {
      this.disconnect();
      this.retryLater(`sending ZdsHello to ${this.o.path} failed: ${(err as Error).message}`);
      return;
    }
    this.connections++;
    this.o.manager.resetSnapshot();
    this.o.onReady(false);
    this.o.logger.info({ socket: this.o.path }, 'connected to the node agent (ZDS)');
    const fd = this.fd;
    this.poll = this.o.addon.pollStart(fd, (error) => this.onReadable(fd, error));
  }

  private onReadable(fd: number, error: string | null): void {
    if (fd !== this.fd) return;
    if (error) {
      this.lost(`ZDS socket error: ${error}`);
      return;
    }
    for (;;) {
      let m: SeqpacketMessage | null;
      try {
        m = this.o.addon.seqpacketRecv(fd, MAX_MESSAGE, MAX_FDS);
      } catch (err) {
        this.lost(`reading from the node agent failed: ${(err as Error).message}`);
        return;
      }
      if (m === null) break;
      if (m.data.length === 0 && m.fds.length === 0 && !m.truncated) {
        this.lost('the node agent closed the connection');
        return;
      }
      if (this.queue.length >= MAX_QUEUE) {
        for (const f of m.fds) closeQuietly(f);
        this.lost(`the node agent sent more than ${MAX_QUEUE} requests without waiting for acks`);
        return;
      }
      this.queue.push(m);
    }
    void this.drainQueue(fd);
  }

  private async drainQueue(fd: number): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let m = this.queue.shift(); m && fd === this.fd; m = this.queue.shift()) {
        const error = await this.handle(m);
        if (fd !== this.fd) return;
        try {
          this.o.addon.seqpacketSend(fd, this.o.codec.encodeAck(error), []);
        } catch (err) {
          this.lost(`sending an ack to the node agent failed: ${(err as Error).message}`);
          return;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Applies one message; returns the ack error ('' = success). Every descriptor is owned or closed here. */
  private async handle(m: SeqpacketMessage): Promise<string> {
    let req: ZdsRequest;
    let netns: PodNetns | null = null;
    try {
      if (m.truncated) throw new Error(`truncated message from the node agent (over ${MAX_MESSAGE} bytes or too many descriptors); its descriptors were closed`);
      req = this.o.codec.decodeRequest(m.data, m.fds.length);
      if (req.kind === 'add') netns = PodNetns.adopt(this.o.addon, m.fds[0]!, this.o.mark);
    } catch (err) {
      for (const f of m.fds) closeQuietly(f);
      const msg = (err as Error).message;
      this.lastError = msg;
      this.o.logger.warn({ error: msg }, 'rejected a ZDS request');
      return msg;
    }
    try {
      await this.o.manager.apply(req, netns);
    } catch (err) {
      const msg = (err as Error).message;
      this.lastError = msg;
      this.o.logger.warn({ request: req.kind, uid: 'uid' in req ? req.uid : undefined, error: msg }, 'ZDS request failed');
      return msg;
    }
    if (req.kind === 'snapshot_sent') {
      this.backoff.reset();
      this.o.onReady(true);
      this.o.logger.info({ pods: this.o.manager.podUids().length }, 'node agent snapshot applied');
    }
    return '';
  }

  private lost(why: string): void {
    this.disconnect();
    this.retryLater(why);
  }

  private disconnect(): void {
    if (this.poll) this.o.addon.pollStop(this.poll);
    this.poll = null;
    if (this.fd >= 0) closeQuietly(this.fd);
    this.fd = -1;
    for (const m of this.queue.splice(0)) for (const f of m.fds) closeQuietly(f);
  }

  private retryLater(why: string): void {
    if (this.closed) return;
    this.o.onReady(false);
    const delay = this.backoff.next();
    this.lastError = why;
    const log = this.backoff.attempts <= 1 || delay >= 1000 ? 'warn' : 'debug';
    this.o.logger[log]({ socket: this.o.path, retryInMs: delay }, `${why}; is the node agent (istio-cni) running? retrying`);
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  /** Pending pods are retried through the same one-at-a-time path as requests (one writer). */
  private scheduleRetry(): void {
    const every = this.o.retryPendingMs ?? 5000;
    this.retryTimer = this.o.clock.setTimeout(() => {
      if (this.closed) return;
      if (this.busy || this.o.manager.pendingUids().length === 0) return this.scheduleRetry();
      this.busy = true;
      void this.o.manager.retryPending().finally(() => {
        this.busy = false;
        void this.drainQueue(this.fd);
        this.scheduleRetry();
      });
    }, every);
    this.retryTimer.unref?.();
  }
}
