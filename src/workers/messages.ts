import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { NodeConfig } from '../config/node-config';
import type { LogLevel } from '../config/key';
import type { Reason } from '../errors';
import type { AcceptInfo } from '../proxy/listener-manager';
import type { StateBatch } from '../state/source';
import type { ConnectionRow } from '../telemetry/connection-tracker';
import type { SocketAddr } from '../util/socket-addr';

/**
 * The messages between the node's main thread and its data-path worker threads. Everything
 * here is structured-clone data: a worker owns its sockets, its HBONE pool and server, its
 * connection records and its metric registry; the main thread owns the state, the
 * certificates (their keys cross once per issuance), xDS, ZDS, the listeners and admin.
 */

/** What a worker starts from (workerData). */
export interface WorkerInit {
  readonly index: number;
  readonly config: NodeConfig;
  /** The state at start, as one batch; later changes follow as `state` messages. */
  readonly state: StateBatch;
  readonly listeners: ListenerFacts;
  readonly pods: readonly PodEntry[];
  readonly levels: LevelsMsg;
  /** Certificates already issued (the worker builds its own contexts from them). */
  readonly certs: readonly CertMaterial[];
  /** XDS_ON_DEMAND: the worker asks the main thread's xDS client on a lookup miss. */
  readonly demand: boolean;
}

/** What the main thread's listener manager knows that the data path asks (self-calls, illegal ports). */
export interface ListenerFacts {
  readonly illegalPorts: readonly number[];
  readonly bound: readonly SocketAddr[];
}

/**
 * One enrolled pod (in-pod mode): its namespace descriptor, owned by the main thread. The
 * number is valid in every thread of the process; the main thread closes it only after
 * each worker has confirmed the pod's removal.
 */
export interface PodEntry {
  readonly uid: string;
  readonly nsFd: number;
  readonly mark: number;
  readonly name: string;
  readonly namespace: string;
}

/** A certificate's parts with its key: only ever in a message, never logged or dumped. */
export interface CertMaterial {
  readonly identity: string;
  readonly keyPem: string;
  readonly chainPem: readonly string[];
  readonly rootsPem: readonly string[];
}

export interface LevelsMsg {
  readonly base: LogLevel | null;
  readonly scopes: readonly (readonly [string, LogLevel])[];
}

/** One worker's share of /metrics, /debug/connections and /config_dump; a request asks for one part. */
export interface WorkerReport {
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
  readonly connections: ConnectionRow[];
  readonly dump: unknown;
}

export type ReportPart = keyof WorkerReport;

export type ToWorker =
  | { readonly t: 'conn'; readonly fd: number; readonly info: AcceptInfo }
  | { readonly t: 'state'; readonly batch: StateBatch }
  | { readonly t: 'listeners'; readonly facts: ListenerFacts }
  | { readonly t: 'pods'; readonly pods: readonly PodEntry[]; readonly seq: number }
  | { readonly t: 'cert'; readonly material: CertMaterial }
  | { readonly t: 'cert-reply'; readonly id: number; readonly ok: true }
  | { readonly t: 'cert-reply'; readonly id: number; readonly ok: false; readonly reason: Reason; readonly message: string }
  | { readonly t: 'demand-reply'; readonly id: number; readonly found: boolean }
  | { readonly t: 'levels'; readonly levels: LevelsMsg }
  | { readonly t: 'report'; readonly id: number; readonly part: ReportPart }
  | { readonly t: 'drain' }
  | { readonly t: 'destroy' };

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'log'; readonly lines: string }
  | { readonly t: 'cert-request'; readonly id: number; readonly identity: string }
  | { readonly t: 'demand'; readonly id: number; readonly name: string }
  | { readonly t: 'pods-applied'; readonly seq: number }
  | { readonly t: 'report'; readonly id: number; readonly value: WorkerReport[ReportPart] }
  | { readonly t: 'drained' };
