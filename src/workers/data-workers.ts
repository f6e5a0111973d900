import * as path from 'node:path';
import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { DestinationStream, Logger } from 'pino';
import type { Component } from '../app/component';
import type { NodeConfig } from '../config/node-config';
import { ProxyError } from '../errors';
import { SpiffeId } from '../identity/spiffe';
import type { CertificateSource, WorkloadCertificate } from '../identity/types';
import { closeQuietly } from '../inpod/pod-netns';
import { duplicateSocketFd } from '../transport/socket-opts';
import { logLevelsOf } from '../logging/logger';
import type { LevelSpec } from '../logging/levels';
import type { AcceptInfo } from '../proxy/listener-manager';
import type { StateView } from '../state/view';
import type { CertMaterial, FromWorker, LevelsMsg, ListenerFacts, PodEntry, ReportPart, ToWorker, WorkerInit, WorkerReport } from './messages';
import { changeBatch, snapshotBatch, writeLines } from './relay';

export interface DataWorkersOptions {
  /** Worker threads beside the main thread (ZTUNNEL_WORKER_THREADS - 1). */
  readonly threads: number;
  /** How the thread count was chosen (ZTUNNEL_WORKER_THREADS, the CPU limit, the cores), for /config_dump. */
  readonly why: string;
  readonly config: NodeConfig;
  /** The root logger; worker lines are written to its destination. */
  readonly logger: Logger;
  readonly logDestination: DestinationStream;
  readonly state: StateView;
  readonly certs: CertificateSource;
  /** F_DUPFD_CLOEXEC from the native addon. */
  readonly dupFd: (fd: number) => number;
  readonly listenerFacts: () => ListenerFacts;
  /** XDS_ON_DEMAND: the main thread's xDS client answers the workers' misses. */
  readonly demand: ((name: string) => Promise<boolean>) | null;
  /** In-pod mode: the enrolled pods and their namespace descriptors (owned by the main thread). */
  readonly pods: () => readonly PodEntry[];
}

interface Thread {
  readonly index: number;
  worker: Worker;
  ready: boolean;
  exited: boolean;
  handedOff: number;
  /** The last pod-set version this thread applied. */
  podsSeq: number;
  drained: Promise<void>;
  markDrained: () => void;
}

const REPORT_TIMEOUT_MS = 2000;
const FORCE_EXIT_MS = 2000;

/**
 * The node proxy's data-path worker threads (ZTUNNEL_WORKER_THREADS). The main thread keeps
 * the one accept loop of every listener (per-workload, fixed, and in-pod ones inside pod
 * namespaces) and spreads accepted connections round-robin over itself and the workers: a
 * connection given away is a duplicated descriptor in a message, and the main thread closes
 * its own handle in the same turn, before any byte was read. Everything a worker needs
 * besides its sockets flows from here: state changes (replayed on its replica), listener
 * facts, pods, log levels, and each new certificate with its key.
 */
export class DataWorkers implements Component {
  readonly name = 'workers';
  private readonly threads: Thread[] = [];
  private readonly material = new Map<string, CertMaterial>();
  private readonly pendingReports = new Map<number, (r: WorkerReport[ReportPart] | null) => void>();
  private readonly inflight = new Map<ReportPart, Promise<WorkerReport[ReportPart][]>>();
  private lent = new Map<string, PodEntry>();
  /** Lent descriptors of pods that left, closed once every thread applied that pod set. */
  private readonly retired: { seq: number; fds: number[] }[] = [];
  private podsSeq = 0;
  /** Round-robin position; the first connection goes to the main thread. */
  private turn = -1;
  /** Connections the main thread served itself (its turn, or no worker could take one). */
  private kept = 0;
  private nextReport = 1;
  private stopping = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly o: DataWorkersOptions) {}

  /** CertManager's shareKey: every new certificate reaches every worker thread. */
  readonly shareKey = (cert: WorkloadCertificate, keyPem: string): void => {
    const m: CertMaterial = { identity: cert.identity.toString(), keyPem, chainPem: [...cert.chainPem], rootsPem: [...cert.rootsPem] };
    this.material.set(m.identity, m);
    this.broadcast({ t: 'cert', material: m });
  };

  async start(): Promise<void> {
    this.unsubscribe.push(this.o.state.onChange((ch) => this.broadcast({ t: 'state', batch: changeBatch(ch) })));
    this.unsubscribe.push(logLevelsOf(this.o.logger).watch((spec) => this.broadcast({ t: 'levels', levels: levelsMsg(spec) })));
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.o.threads; i++) ready.push(this.spawn(i + 1));
    await Promise.all(ready);
    this.o.logger.info({ threads: this.o.threads + 1 }, 'data path runs on the main thread and worker threads');
  }

  /**
   * The accept loop's choice for one connection: true = handed to a worker thread (this
   * socket is already closed here), false = the main thread serves it.
   */
  readonly dispatch = (socket: Socket, info: AcceptInfo): boolean => {
    if (this.stopping || this.threads.length === 0) return false;
    this.turn = (this.turn + 1) % (this.threads.length + 1);
    const t = this.threads[this.turn - 1];
    let dup: number | null = null;
    try {
      if (t && t.ready && !t.exited) dup = duplicateSocketFd(socket, this.o.dupFd);
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message, listener: info.listener }, 'cannot hand a connection to a worker thread; the main thread serves it');
    }
    if (!t || dup === null) {
      this.kept++;
      return false;
    }
    // The worker must know the pod before the connection arrives (messages keep their order).
    if (info.pod !== undefined && !this.lent.has(info.pod)) this.syncPods();
    t.worker.postMessage({ t: 'conn', fd: dup, info } satisfies ToWorker);
    socket.destroy();
    t.handedOff++;
    return true;
  };

  /** Connections the main thread kept and served itself. */
  get mainThreadServed(): number {
    return this.kept;
  }

  /** The listeners changed: the workers' self-call and illegal-port checks follow. */
  notifyListeners(): void {
    this.broadcast({ t: 'listeners', facts: this.o.listenerFacts() });
  }

  /**
   * The enrolled pods changed (in-pod mode). Each new pod's namespace descriptor is
   * duplicated for the workers, so the main thread's pod can close its own at any time; the
   * duplicate of a pod that left is closed only after every worker applied the new set, so
   * no worker ever dials through a descriptor number that was closed (and maybe reused).
   */
  syncPods(): void {
    const now = new Map(this.o.pods().map((p) => [p.uid, p]));
    const next = new Map<string, PodEntry>();
    const gone: number[] = [];
    for (const [uid, e] of this.lent) (now.has(uid) ? next.set(uid, e) : gone.push(e.nsFd));
    for (const [uid, p] of now) {
      if (next.has(uid)) continue;
      try {
        next.set(uid, { ...p, nsFd: this.o.dupFd(p.nsFd) });
      } catch (err) {
        this.o.logger.warn({ pod: uid, error: (err as Error).message }, 'cannot lend a pod namespace to the worker threads; they close its connections');
      }
    }
    this.lent = next;
    this.podsSeq++;
    if (gone.length > 0) this.retired.push({ seq: this.podsSeq, fds: gone });
    this.broadcast({ t: 'pods', pods: [...next.values()], seq: this.podsSeq });
    this.closeRetired();
  }

  /**
   * One part of every live worker's report (a worker that does not answer in time is left
   * out). Callers asking for the same part meanwhile share the round trip: /config_dump's
   * three data-path sections make one.
   */
  report<P extends ReportPart>(part: P): Promise<WorkerReport[P][]> {
    let pending = this.inflight.get(part);
    if (!pending) {
      pending = this.ask(part).finally(() => this.inflight.delete(part));
      this.inflight.set(part, pending);
    }
    return pending as Promise<WorkerReport[P][]>;
  }

  private async ask(part: ReportPart): Promise<WorkerReport[ReportPart][]> {
    const live = this.threads.filter((t) => t.ready && !t.exited);
    const all = await Promise.all(
      live.map(
        (t) =>
          new Promise<WorkerReport[ReportPart] | null>((resolve) => {
            const id = this.nextReport++;
            const timer = setTimeout(() => {
              this.pendingReports.delete(id);
              resolve(null);
            }, REPORT_TIMEOUT_MS);
            this.pendingReports.set(id, (r) => {
              clearTimeout(timer);
              resolve(r);
            });
            t.worker.postMessage({ t: 'report', id, part } satisfies ToWorker);
          }),
      ),
    );
    return all.filter((r): r is WorkerReport[ReportPart] => r !== null);
  }

  /** Drain: every worker stops like the main thread's proxy (GOAWAY, live connections finish), then ends. */
  async close(): Promise<void> {
    this.stopping = true;
    for (const u of this.unsubscribe.splice(0)) u();
    this.broadcast({ t: 'drain' });
    await Promise.all(this.threads.map((t) => t.drained));
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    for (const e of this.lent.values()) closeQuietly(e.nsFd);
    this.lent.clear();
    for (const r of this.retired.splice(0)) r.fds.forEach(closeQuietly);
  }

  /** The drain deadline: every worker force-closes what is left (recorded DRAINED) and ends. */
  destroy(): void {
    this.stopping = true;
    this.broadcast({ t: 'destroy' });
    for (const t of this.threads) {
      const timer = setTimeout(() => void t.worker.terminate(), FORCE_EXIT_MS);
      timer.unref();
      void t.drained.then(() => clearTimeout(timer));
    }
  }

  dump(): unknown {
    return {
      threads: this.threads.length + 1,
      why: this.o.why,
      mainThreadServed: this.kept,
      workers: this.threads.map((t) => ({ index: t.index, threadId: t.worker.threadId, ready: t.ready, exited: t.exited, handedOff: t.handedOff })),
      lentPods: this.lent.size,
    };
  }

  private spawn(index: number): Promise<void> {
    const init: WorkerInit = {
      index,
      config: this.o.config,
      state: snapshotBatch(this.o.state),
      listeners: this.o.listenerFacts(),
      pods: [...this.lent.values()],
      levels: levelsMsg(logLevelsOf(this.o.logger).current()),
      certs: [...this.material.values()],
      demand: this.o.demand !== null,
    };
    // Descriptors are shared across the process on purpose (handed-over connections, lent pod
    // namespaces), so the worker must not track or close "its" raw descriptors at exit.
    const worker = new Worker(path.join(__dirname, 'data-worker.js'), { workerData: init, trackUnmanagedFds: false });
    let markDrained = (): void => undefined;
    const drained = new Promise<void>((r) => (markDrained = r));
    const t: Thread = { index, worker, ready: false, exited: false, handedOff: 0, podsSeq: this.podsSeq, drained, markDrained };
    const existing = this.threads.findIndex((x) => x.index === index);
    if (existing >= 0) this.threads[existing] = t;
    else this.threads.push(t);
    return new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          t.ready = true;
          resolve();
          return;
        }
        this.onMessage(t, m);
      });
      worker.on('error', (err) => {
        this.o.logger.error({ err, worker: index }, 'data-path worker thread failed');
        if (!t.ready) reject(new Error(`data-path worker thread ${index} failed to start: ${err.message}`, { cause: err }));
      });
      worker.on('exit', (code) => {
        t.exited = true;
        t.markDrained();
        if (this.stopping || !t.ready) return;
        // Its connections are gone with it; a new thread takes its place for new ones.
        this.o.logger.error({ worker: index, code }, 'data-path worker thread exited; starting a new one');
        void this.spawn(index).catch((err: unknown) => this.o.logger.error({ err, worker: index }, 'cannot restart a data-path worker thread'));
      });
    });
  }

  private onMessage(t: Thread, m: FromWorker): void {
    switch (m.t) {
      case 'log':
        return writeLines(this.o.logDestination, m.lines);
      case 'cert-request':
        return this.answerCert(t, m.id, m.identity);
      case 'demand': {
        const reply = (found: boolean): void => t.worker.postMessage({ t: 'demand-reply', id: m.id, found } satisfies ToWorker);
        void (this.o.demand ? this.o.demand(m.name) : Promise.resolve(false)).then(reply, () => reply(false));
        return;
      }
      case 'pods-applied':
        t.podsSeq = m.seq;
        return this.closeRetired();
      case 'report': {
        const r = this.pendingReports.get(m.id);
        this.pendingReports.delete(m.id);
        return r?.(m.value);
      }
      case 'drained':
        return t.markDrained();
      case 'ready':
        return;
    }
  }

  private answerCert(t: Thread, id: number, identity: string): void {
    const fail = (err: unknown): void => {
      const reason = err instanceof ProxyError ? err.reason : 'IDENTITY_ERROR';
      t.worker.postMessage({ t: 'cert-reply', id, ok: false, reason, message: (err as Error).message ?? String(err) } satisfies ToWorker);
    };
    let spiffe: SpiffeId;
    try {
      spiffe = SpiffeId.parse(identity);
    } catch (err) {
      return fail(err);
    }
    this.o.certs.fetchCertificate(spiffe, 'realtime').then(() => {
      // The material was broadcast when the certificate was issued; send it again in case
      // this thread started after that broadcast and before its init was taken.
      const m = this.material.get(identity);
      if (m) t.worker.postMessage({ t: 'cert', material: m } satisfies ToWorker);
      t.worker.postMessage({ t: 'cert-reply', id, ok: true } satisfies ToWorker);
    }, fail);
  }

  private closeRetired(): void {
    const applied = Math.min(this.podsSeq, ...this.threads.filter((t) => !t.exited).map((t) => t.podsSeq));
    while (this.retired.length > 0 && this.retired[0]!.seq <= applied) this.retired.shift()!.fds.forEach(closeQuietly);
  }

  private broadcast(m: ToWorker): void {
    for (const t of this.threads) if (!t.exited) t.worker.postMessage(m);
  }
}

function levelsMsg(spec: LevelSpec): LevelsMsg {
  return { base: spec.base, scopes: [...spec.scopes] };
}
