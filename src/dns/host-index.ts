import type { Service, Workload } from '../state/types';
import type { StateView } from '../state/view';
import { canonicalName } from './names';

/**
 * Hostname → Services and Workloads, for the DNS proxy's lookups (the state's own indexes are
 * by address, uid and `ns/hostname`). Rebuilt lazily, at the first lookup after a state change
 * that touched services or workloads, so a push costs nothing until someone asks; between
 * changes every lookup is one map access. Services are kept sorted by `ns/hostname` so ties
 * are broken the same way every time.
 */
export class HostIndex {
  private services = new Map<string, Service[]>();
  private workloads = new Map<string, Workload[]>();
  private dirty = true;
  private readonly unsubscribe: () => void;

  constructor(private readonly state: StateView) {
    this.unsubscribe = state.onChange((c) => {
      if (c.servicesChanged || c.workloadsAdded.length > 0 || c.workloadsRemoved.length > 0 || c.workloadsUpdated.length > 0) this.dirty = true;
    });
  }

  servicesFor(host: string): readonly Service[] {
    this.refresh();
    return this.services.get(host) ?? [];
  }

  workloadsFor(host: string): readonly Workload[] {
    this.refresh();
    return this.workloads.get(host) ?? [];
  }

  close(): void {
    this.unsubscribe();
  }

  private refresh(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const services = new Map<string, Service[]>();
    const sorted = [...this.state.allServices()].sort((a, b) => (`${a.namespace}/${a.hostname}` < `${b.namespace}/${b.hostname}` ? -1 : 1));
    for (const s of sorted) push(services, canonicalName(s.hostname), s);
    const workloads = new Map<string, Workload[]>();
    for (const w of this.state.allWorkloads()) if (w.hostname !== '') push(workloads, canonicalName(w.hostname), w);
    this.services = services;
    this.workloads = workloads;
  }
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
