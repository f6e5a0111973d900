import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Component } from '../app/component';
import type { NodeConfig } from '../config/node-config';
import { SpiffeId } from '../identity/spiffe';
import type { AcceptInfo } from '../proxy/listener-manager';
import type { NodeProxyAddrs } from '../proxy/node-proxy';
import { nodeTcpTuning } from '../proxy/node-transport';
import type { PodSocketSource } from '../transport/dial';
import type { Clock } from '../util/clock';
import type { Socket } from 'node:net';
import { createWorkloadManagerMetrics } from './metrics';
import { loadNetnsAddon } from './netns-addon';
import { PodListeners, type PodListenerSpec } from './pod-listeners';
import { WorkloadManager } from './workload-manager';
import { ZdsClient } from './zds-client';
import { ZdsCodec, type ZdsWorkloadInfo } from './zds-codec';
import type { PodNetns } from './pod-netns';
import type { PodEntry } from '../workers/messages';

export interface InpodModeDeps {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  /** The node proxy's accept path. */
  readonly accept: (socket: Socket, info: AcceptInfo) => void;
  /** Readiness: false until the agent's snapshot is acknowledged (and while reconnecting). */
  readonly setReady: (ready: boolean) => void;
  /** Called after every pod change (certificates follow the enrolled pods). */
  readonly onPodsChanged: () => void;
  /**
   * More per-pod listeners (the DNS proxy): started before the pod's proxy listeners, inside
   * the same namespace; returns the pod's stop function. A throw leaves the pod pending.
   */
  readonly podExtras?: (uid: string, info: ZdsWorkloadInfo, netns: PodNetns) => Promise<() => void>;
}

/** The in-pod parts of a node proxy, built by its composition root when INPOD_ENABLED. */
export interface InpodMode {
  readonly component: Component;
  readonly podSockets: PodSocketSource;
  /** Identities from the agent's workload info, for pods the state does not know (certificate fallback). */
  fallbackIdentities(known: (uid: string) => boolean): SpiffeId[];
  /** /config_dump `workloadState`: every pod the agent handed us, as ztunnel reports it. */
  workloadState(): Record<string, PodState>;
  /** The enrolled pods with their namespace descriptors (the node's worker threads borrow duplicates). */
  pods(): PodEntry[];
}

/** ztunnel's per-pod admin state: `Up` once the pod's listeners run, `Pending` while its start is retried. */
export interface PodState {
  readonly state: 'Up' | 'Pending';
  readonly info: ZdsWorkloadInfo;
}

/**
 * Host-less listener addresses become in-pod listeners (that port inside every enrolled
 * pod); addresses with a host stay fixed listeners of the listener manager.
 */
export function splitInpodAddrs(addrs: NodeProxyAddrs): { fixed: NodeProxyAddrs; pod: PodListenerSpec[] } {
  const pod: PodListenerSpec[] = [];
  const pick = (name: PodListenerSpec['name'], a: NodeProxyAddrs['outbound']): NodeProxyAddrs['outbound'] => {
    if (a && a.host === null) {
      pod.push({ name, port: a.port });
      return null;
    }
    return a;
  };
  const fixed: NodeProxyAddrs = { outbound: pick('outbound', addrs.outbound), inboundPlaintext: pick('inbound_plaintext', addrs.inboundPlaintext), inbound: pick('inbound', addrs.inbound), socks5: addrs.socks5 };
  return { fixed, pod };
}

/** Wires the ZDS client, the workload manager and the per-pod listeners. Throws when the native addon is missing. */
export function createInpodMode(d: InpodModeDeps, podSpecs: readonly PodListenerSpec[]): InpodMode {
  const support = loadNetnsAddon();
  if (!support.available) throw new Error(`INPOD_ENABLED needs the native addon (setns, SCM_RIGHTS): ${support.reason}`);
  const c = d.config;
  const logger = d.logger.child({ scope: 'inpod' });
  const listeners = new PodListeners({ logger, specs: podSpecs, reusePort: c.inpodPortReuse, host: c.ipv6Enabled ? '::' : '0.0.0.0', onSocket: d.accept, tcp: nodeTcpTuning(c) });
  const manager = new WorkloadManager(
    async (uid, info, netns) => {
      const stopExtras = d.podExtras ? await d.podExtras(uid, info, netns) : null;
      let pod: Awaited<ReturnType<PodListeners['start']>>;
      try {
        pod = await listeners.start(uid, info, netns);
      } catch (err) {
        stopExtras?.();
        throw err;
      }
      d.onPodsChanged();
      return {
        stop: () => {
          // Extras first: they may still make sockets in the namespace pod.stop() closes.
          stopExtras?.();
          pod.stop();
          d.onPodsChanged();
        },
      };
    },
    createWorkloadManagerMetrics(d.registry),
    logger,
  );
  const client = new ZdsClient({ addon: support.addon, codec: new ZdsCodec(), manager, path: c.inpodUds, mark: c.packetMark, logger, clock: d.clock, onReady: d.setReady });
  const component: Component = {
    name: 'inpod',
    start: () => client.start(),
    close: async () => {
      await client.close();
      await listeners.close();
    },
    destroy: () => {
      client.destroy();
      listeners.destroy();
    },
    listeners: () => listeners.listeners(),
    dump: () => client.dump(),
  };
  return {
    component,
    pods: () => listeners.podNamespaces().map(({ uid, info, netns }) => ({ uid, nsFd: netns.fd, mark: c.packetMark, name: info.name, namespace: info.namespace })),
    podSockets: { forPod: (uid) => listeners.socketsForPod(uid), forWorkload: (w) => listeners.socketsForWorkload(w) },
    workloadState: () => {
      const out: Record<string, PodState> = {};
      for (const [uids, state] of [[manager.podUids(), 'Up'], [manager.pendingUids(), 'Pending']] as const) {
        for (const uid of uids) {
          const info = manager.workloadInfo(uid);
          if (info) out[uid] = { state, info: { name: info.name, namespace: info.namespace, serviceAccount: info.serviceAccount } };
        }
      }
      return out;
    },
    fallbackIdentities: (known) => {
      const out: SpiffeId[] = [];
      for (const [uid, info] of listeners.podInfos()) {
        if (known(uid)) continue;
        const id = SpiffeId.tryParse(`spiffe://${c.trustDomain}/ns/${info.namespace}/sa/${info.serviceAccount || 'default'}`);
        if (id) out.push(id);
      }
      return out;
    },
  };
}
