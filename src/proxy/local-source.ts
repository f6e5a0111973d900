import type { Workload } from '../state/types';
import type { StateView } from '../state/view';

/**
 * The local workload that owns a source IP: a workload on THIS node (node == NODE_NAME)
 * whose workloadIps include the IP. Nothing else is accepted as a substitute (the listener's
 * workload, another node's workload): traffic is never attributed to the wrong identity.
 */
export function findLocalWorkload(state: StateView, network: string, nodeName: string, ip: string): Workload | undefined {
  const w = state.findWorkloadByAddr({ network, ip });
  return w && w.node === nodeName ? w : undefined;
}

/**
 * Waits a bounded time for the source workload to arrive (a new pod can send before the
 * state knows it; ztunnel waits 5s). Resolves undefined at the deadline or if `cancel`
 * fires first (the client went away).
 */
export function waitForLocalWorkload(state: StateView, network: string, nodeName: string, ip: string, waitMs: number, cancel: Promise<unknown>): Promise<Workload | undefined> {
  const now = findLocalWorkload(state, network, nodeName, ip);
  if (now || waitMs <= 0) return Promise.resolve(now);
  return new Promise((resolve) => {
    let done = false;
    const finish = (w: Workload | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      off();
      resolve(w);
    };
    const off = state.onChange(() => {
      const w = findLocalWorkload(state, network, nodeName, ip);
      if (w) finish(w);
    });
    const timer = setTimeout(() => finish(undefined), waitMs);
    void cancel.then(() => finish(undefined));
  });
}
