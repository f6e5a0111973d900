import type { Component } from '../app/component';
import type { Authorization, Service, Workload } from './types';
import type { StateChange } from './view';

/**
 * A producer of workload state (the local config file, an xDS stream). It is a runtime
 * component; `ready` resolves once its first complete view has been written, which is what
 * the "state" readiness task waits for. A source that never gets a good view leaves it pending.
 */
export interface StateSource extends Component {
  readonly ready: Promise<void>;
}

/** Upserts and removals for each kind; removals name uids / `ns/hostname` / `ns/name`. */
export interface StateBatch {
  readonly workloads?: { readonly upsert?: readonly Workload[]; readonly remove?: readonly string[] };
  readonly services?: { readonly upsert?: readonly Service[]; readonly remove?: readonly string[] };
  readonly policies?: { readonly upsert?: readonly Authorization[]; readonly remove?: readonly string[] };
}

/** Everything one source holds (a whole file, an xDS state-of-the-world response). */
export interface SourceContents {
  readonly workloads: readonly Workload[];
  readonly services: readonly Service[];
  readonly policies: readonly Authorization[];
}

/**
 * A source's handle on the shared state (from StateUpdater.source(id)). Every write names
 * the resources it concerns; a source can only replace or remove what it holds itself, so
 * a local file and an xDS stream (or two files) feed one state without wiping each other.
 * Both methods apply synchronously and return the resulting change, or null when nothing
 * visible changed.
 */
export interface SourceWriter {
  readonly id: string;
  /** Upserts and removes by name. Removing a resource this source does not hold does nothing. */
  applyBatch(batch: StateBatch): StateChange | null;
  /** This source now holds exactly `contents`: what it held before and does not list is removed. */
  replaceAll(contents: SourceContents): StateChange | null;
}
