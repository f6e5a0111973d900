import type { Entry } from '../lib/client';
import type { ManagedProc } from '../lib/managed';
import type { PathHandle, PathId } from './types';

/**
 * Starts a peer's two-hop tunnel (hop B, the TLS terminator, first so hop A can reach it)
 * and describes it as a PathHandle. Shared by the HAProxy and stunnel paths, which differ
 * only in how their processes are configured.
 */
export async function startTwoHop(id: PathId, hopA: ManagedProc, hopB: ManagedProc, entry: Entry, describe: string): Promise<PathHandle> {
  const stop = async (): Promise<void> => {
    await Promise.all([hopA.stop(), hopB.stop()]);
  };
  try {
    await hopB.start();
    await hopA.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    id,
    entry,
    pids: () => [hopA.pid, hopB.pid],
    restart: async () => {
      await hopB.restart();
      await hopA.restart();
    },
    metricsUrls: [],
    describe,
    stop,
  };
}
