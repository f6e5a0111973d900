import type { SocketAddr } from '../util/socket-addr';

/** A listener a component bound, for the start-up log and /config_dump. */
export interface BoundListener {
  readonly name: string;
  readonly address: SocketAddr;
  /** The workload uid for per-workload listeners. */
  readonly workload?: string;
}

/**
 * Lifecycle contract of every long-lived part. close() stops accepting and
 * resolves when in-flight work is done; the runtime races it against the drain deadline
 * and then calls destroy(). All three are idempotent.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  close(): Promise<void>;
  destroy(): void;
  listeners?(): readonly BoundListener[];
  dump?(): unknown;
}
