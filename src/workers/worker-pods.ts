import type { Socket } from 'node:net';
import type { Workload } from '../state/types';
import type { PodSocketSource, SocketFactory } from '../transport/dial';
import { applySocketOptions, type TcpTuning } from '../transport/socket-opts';
import type { NetnsAddon } from '../inpod/netns-addon';
import { PodNetns } from '../inpod/pod-netns';
import { podOfWorkload } from '../inpod/pod-listeners';
import type { PodEntry } from './messages';

interface WorkerPod {
  readonly entry: PodEntry;
  readonly dial: SocketFactory;
  readonly sockets: Set<Socket>;
}

/**
 * A worker thread's view of the enrolled pods (in-pod mode): dials from a pod's namespace
 * use the namespace descriptor the main thread lent for it, and every socket this thread
 * holds for a pod (handed over or dialled) is closed when the pod leaves, as the main
 * thread closes its own. The descriptor is never closed here: the main thread closes it
 * after every worker confirmed the removal.
 */
export class WorkerPods implements PodSocketSource {
  private readonly pods = new Map<string, WorkerPod>();

  constructor(
    private readonly addon: NetnsAddon | null,
    private readonly tcp: TcpTuning,
  ) {}

  /** The whole enrolled set: new pods are added, pods no longer listed lose their sockets. */
  replace(entries: readonly PodEntry[]): void {
    const keep = new Set(entries.map((e) => e.uid));
    for (const [uid, pod] of this.pods) {
      if (keep.has(uid)) continue;
      this.pods.delete(uid);
      for (const s of pod.sockets) s.destroy();
    }
    for (const e of entries) if (!this.pods.has(e.uid) && this.addon) this.pods.set(e.uid, this.podOf(e, this.addon));
  }

  /**
   * An accepted socket of a pod's listener now belongs to the pod here too (closed with
   * it). False when the pod already left: the socket is closed, as its pod's would be.
   */
  track(uid: string | undefined, s: Socket): boolean {
    if (uid === undefined) return true;
    const pod = this.pods.get(uid);
    if (!pod) {
      s.destroy();
      return false;
    }
    pod.sockets.add(s);
    s.once('close', () => pod.sockets.delete(s));
    return true;
  }

  forPod(uid: string): SocketFactory | undefined {
    return this.pods.get(uid)?.dial;
  }

  forWorkload(w: Workload): SocketFactory | undefined {
    return podOfWorkload(this.pods, w, (p) => p.entry)?.dial;
  }

  private podOf(e: PodEntry, addon: NetnsAddon): WorkerPod {
    const netns = PodNetns.borrow(addon, e.nsFd, e.mark);
    const sockets = new Set<Socket>();
    const dial: SocketFactory = (family, localAddress, transparent) => {
      const s = netns.tcpSocket(family, localAddress, transparent);
      applySocketOptions(s, this.tcp);
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      return s;
    };
    return { entry: e, dial, sockets };
  }
}
