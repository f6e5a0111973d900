import type { Logger } from 'pino';
import type { WorkloadManagerMetrics } from './metrics';
import type { PodNetns } from './pod-netns';
import type { ZdsRequest, ZdsWorkloadInfo } from './zds-codec';

/** A running in-pod proxy (the pod's listeners and its live sockets). */
export interface RunningPod {
  /** Immediate drain (ZDS del, snapshot reconcile): listeners closed, the pod's live sockets destroyed, netns closed. */
  stop(): void;
}

/** Starts a pod's proxy inside its namespace; takes ownership of `netns` only when it resolves. */
export type PodStarter = (uid: string, info: ZdsWorkloadInfo, netns: PodNetns) => Promise<RunningPod>;

interface Pod {
  readonly info: ZdsWorkloadInfo;
  readonly inode: number;
  readonly running: RunningPod;
}

interface Pending {
  readonly info: ZdsWorkloadInfo;
  readonly netns: PodNetns;
}

/**
 * The pods this node proxy serves, driven by ZDS requests, with ztunnel's snapshot rules:
 * on every (re)connection the agent re-sends an add for each pod it knows, then
 * snapshot_sent; adds (and keeps) before the snapshot are remembered, and snapshot_sent
 * stops every pod not named since the connection began. `keep` is valid only before the
 * snapshot, a second snapshot_sent is a protocol error, `del` stops the pod at once.
 * A pod whose proxy fails to start is kept as pending (its namespace stays open) and
 * retried; pods keep being served while the agent is away. The only writer of this state
 * is the ZDS connection that delivers requests one at a time.
 */
export class WorkloadManager {
  private readonly pods = new Map<string, Pod>();
  private readonly pending = new Map<string, Pending>();
  private snapshotReceived = false;
  private readonly snapshotNames = new Set<string>();

  constructor(
    private readonly start: PodStarter,
    private readonly metrics: WorkloadManagerMetrics,
    private readonly logger: Logger,
  ) {}

  /** A new agent connection begins: forget what the previous one named. */
  resetSnapshot(): void {
    this.snapshotNames.clear();
    for (const p of this.pending.values()) p.netns.close();
    this.pending.clear();
    this.snapshotReceived = false;
    this.updateGauges();
  }

  get snapshotDone(): boolean {
    return this.snapshotReceived;
  }

  /** Uids of running pods (admin dump, tests). */
  podUids(): string[] {
    return [...this.pods.keys()].sort();
  }

  pendingUids(): string[] {
    return [...this.pending.keys()].sort();
  }

  workloadInfo(uid: string): ZdsWorkloadInfo | undefined {
    return this.pods.get(uid)?.info ?? this.pending.get(uid)?.info;
  }

  /**
   * Applies one request. `netns` comes with an add (ownership passes here: it is kept,
   * or closed when not needed). Rejects with an Error whose message becomes the ack's error.
   */
  async apply(req: ZdsRequest, netns: PodNetns | null): Promise<void> {
    switch (req.kind) {
      case 'add':
        if (!netns) throw new Error(`add for uid ${req.uid} without a network namespace`);
        return this.add(req.uid, req.info, netns);
      case 'keep':
        if (this.snapshotReceived) throw new Error(`keep for uid ${req.uid} after snapshot_sent (keep is only valid before the snapshot)`);
        this.snapshotNames.add(req.uid);
        return;
      case 'del':
        this.logger.info({ uid: req.uid }, 'pod deleted: stopping its proxy now');
        if (!this.snapshotReceived) {
          // Before the snapshot, reconcile will stop it; a pending one must go now (reconcile only sees running pods).
          this.snapshotNames.delete(req.uid);
          this.dropPending(req.uid);
          return;
        }
        this.stopPod(req.uid);
        return;
      case 'snapshot_sent':
        if (this.snapshotReceived) throw new Error('snapshot_sent received twice on one connection');
        this.reconcile();
        this.snapshotReceived = true;
        return;
    }
  }

  /** Retries pods whose proxy failed to start (ztunnel retries them periodically). */
  async retryPending(): Promise<void> {
    const retry = [...this.pending.entries()];
    this.pending.clear();
    for (const [uid, p] of retry) {
      try {
        await this.startPod(uid, p.info, p.netns);
        this.logger.info({ uid }, 'pending pod proxy started on retry');
      } catch (err) {
        this.logger.warn({ uid, error: err instanceof Error ? err.message : String(err) }, 'pending pod proxy failed again; retrying later');
      }
    }
  }

  /** Stops every pod (shutdown already drained their listeners; this releases what is left). */
  stopAll(): void {
    for (const uid of [...this.pods.keys()]) this.stopPod(uid);
    for (const uid of [...this.pending.keys()]) this.dropPending(uid);
  }

  private async add(uid: string, info: ZdsWorkloadInfo, netns: PodNetns): Promise<void> {
    if (!this.snapshotReceived) this.snapshotNames.add(uid);
    const existing = this.pods.get(uid);
    if (existing) {
      if (existing.inode === netns.inode) {
        // Idempotent: the same pod in the same namespace (every reconnect re-sends it).
        netns.close();
        return;
      }
      // A new sandbox (new namespace) for the same pod: the old proxy goes, the new one starts.
      this.logger.info({ uid, oldNetns: existing.inode, newNetns: netns.inode }, 'pod re-added with a new network namespace: replacing its proxy');
      this.stopPod(uid);
    }
    this.dropPending(uid);
    this.logger.info({ uid, name: info.name, namespace: info.namespace }, 'pod received, starting its proxy');
    await this.startPod(uid, info, netns);
  }

  private async startPod(uid: string, info: ZdsWorkloadInfo, netns: PodNetns): Promise<void> {
    let running: RunningPod;
    try {
      running = await this.start(uid, info, netns);
    } catch (err) {
      this.pending.set(uid, { info, netns });
      this.updateGauges();
      throw new Error(`cannot start the proxy of pod ${uid} (${info.namespace}/${info.name}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.pods.set(uid, { info, inode: netns.inode, running });
    this.metrics.started.inc();
    this.updateGauges();
  }

  private stopPod(uid: string): void {
    this.dropPending(uid);
    const p = this.pods.get(uid);
    if (!p) return;
    this.pods.delete(uid);
    p.running.stop();
    this.metrics.stopped.inc();
    this.updateGauges();
  }

  private dropPending(uid: string): void {
    const p = this.pending.get(uid);
    if (!p) return;
    this.pending.delete(uid);
    p.netns.close();
    this.updateGauges();
  }

  private reconcile(): void {
    const gone = [...this.pods.keys()].filter((uid) => !this.snapshotNames.has(uid));
    if (gone.length > 0) this.logger.info({ pods: gone }, 'snapshot: stopping proxies of pods the agent no longer knows');
    for (const uid of gone) this.stopPod(uid);
    for (const uid of [...this.pending.keys()]) if (!this.snapshotNames.has(uid)) this.dropPending(uid);
    this.snapshotNames.clear();
  }

  private updateGauges(): void {
    this.metrics.active.set(this.pods.size);
    this.metrics.pending.set(this.pending.size);
  }
}
