import type { SourceWriter, StateSource } from '../state/source';
import { policyKey, serviceKey, type Authorization, type Service, type Workload } from '../state/types';
import type { StateView } from '../state/view';
import { AdsClient, yieldTurn, type AdsClientOptions } from './ads-client';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, type XdsTypeUrl } from './proto';
import type { DecodedResource, RejectedResource } from './resources';

export interface XdsSourceOptions extends Omit<AdsClientOptions, 'handler' | 'types'> {
  readonly writer: SourceWriter;
  readonly state: StateView;
  /** How long an on-demand lookup waits for the control plane's answer. */
  readonly onDemandTimeoutMs?: number;
}

/** Upserts per state batch when a push is large. */
const APPLY_CHUNK = 2000;

/** Which state object an xDS resource name stands for (a name is a uid, `ns/hostname`, `ns/name` or an on-demand alias). */
type Held = { readonly kind: 'workload' | 'service' | 'policy'; readonly key: string };

/**
 * The xDS state source: istiod's Address and Authorization resources, written through this
 * source's own writer, so a local file (LOCAL_XDS_PATH) feeding the same state is never
 * wiped by it. Each response becomes one batch, applied synchronously: readers never see
 * half of it. Endpoints (workloads naming a service) may arrive before their service: the
 * state indexes them by service key regardless, so the service finds them when it lands.
 */
export class XdsSource implements StateSource {
  readonly name = 'xds';
  readonly ready: Promise<void>;
  readonly client: AdsClient;
  /** xDS resource name → what it put into the state. */
  private readonly held = new Map<string, Held>();
  /** How many names refer to each object (on-demand aliases can share one). */
  private readonly refs = new Map<string, number>();

  constructor(private readonly o: XdsSourceOptions) {
    this.client = new AdsClient({ ...o, types: [ADDRESS_TYPE, AUTHORIZATION_TYPE], handler: (t, r, rm) => this.apply(t, r, rm) });
    this.ready = this.client.ready;
  }

  async start(): Promise<void> {
    this.client.start();
  }

  async close(): Promise<void> {
    this.client.close();
  }

  destroy(): void {
    this.client.close();
  }

  dump(): unknown {
    return this.client.dump();
  }

  /**
   * XDS_ON_DEMAND: asks the control plane for one Address by its on-demand name
   * (`network/ip`, `namespace/hostname` or a uid), waiting at most XDS_ON_DEMAND_TIMEOUT;
   * the data path's DemandLookup calls it on a state miss, then looks again.
   */
  demand(name: string): Promise<boolean> {
    return this.client.demand(name, this.o.onDemandTimeoutMs ?? 5000);
  }

  private async apply(typeUrl: XdsTypeUrl, resources: readonly DecodedResource[], removed: readonly string[]): Promise<RejectedResource[]> {
    const rejected: RejectedResource[] = [];
    const w = { upsert: [] as Workload[], remove: [] as string[] };
    const s = { upsert: [] as Service[], remove: [] as string[] };
    const p = { upsert: [] as Authorization[], remove: [] as string[] };
    const drop = (h: Held): void => void (h.kind === 'workload' ? w : h.kind === 'service' ? s : p).remove.push(h.key);
    for (const name of removed) {
      const h = this.held.get(name);
      if (!h) continue; // removal of something we never held: nothing to do
      this.held.delete(name);
      if (this.unref(h)) drop(h);
    }
    for (const r of resources) {
      const next: Held =
        r.kind === 'workload' ? { kind: 'workload', key: r.workload.uid } : r.kind === 'service' ? { kind: 'service', key: serviceKey(r.service) } : { kind: 'policy', key: policyKey(r.policy) };
      if ((typeUrl === AUTHORIZATION_TYPE) !== (r.kind === 'policy')) {
        rejected.push({ name: r.name, reason: `a ${r.kind} in a ${typeUrl} response` });
        continue;
      }
      const prev = this.held.get(r.name);
      this.held.set(r.name, next);
      if (!prev || prev.kind !== next.kind || prev.key !== next.key) {
        this.ref(next);
        // The same name now stands for another object (a workload became a service, a uid changed).
        if (prev && this.unref(prev)) drop(prev);
      }
      if (r.kind === 'workload') w.upsert.push(r.workload);
      else if (r.kind === 'service') s.upsert.push(r.service);
      else p.upsert.push(r.policy);
    }
    // Removals and the first upserts in one batch; a very large push (the initial sync of a
    // big cluster) continues in further batches with the event loop free in between, so
    // connections keep flowing. Every resource is self-contained, as in any delta push.
    let batch = { workloads: { remove: w.remove, upsert: [] as Workload[] }, services: { remove: s.remove, upsert: [] as Service[] }, policies: p };
    let size = 0;
    const next = async (): Promise<void> => {
      if (++size <= APPLY_CHUNK) return;
      this.o.writer.applyBatch(batch);
      await yieldTurn();
      batch = { workloads: { remove: [], upsert: [] }, services: { remove: [], upsert: [] }, policies: { upsert: [], remove: [] } };
      size = 1;
    };
    for (const x of w.upsert) {
      await next();
      batch.workloads.upsert.push(x);
    }
    for (const x of s.upsert) {
      await next();
      batch.services.upsert.push(x);
    }
    this.o.writer.applyBatch(batch);
    this.o.logger.debug({ type_url: typeUrl, upserts: resources.length - rejected.length, removed: removed.length, version: this.o.state.version }, 'xds resources applied');
    return rejected;
  }

  private ref(h: Held): void {
    const k = `${h.kind}\0${h.key}`;
    this.refs.set(k, (this.refs.get(k) ?? 0) + 1);
  }

  /** Drops one reference; true when no name refers to the object any more. */
  private unref(h: Held): boolean {
    const k = `${h.kind}\0${h.key}`;
    const n = (this.refs.get(k) ?? 1) - 1;
    if (n > 0) this.refs.set(k, n);
    else this.refs.delete(k);
    return n <= 0;
  }
}
