import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { DestinationStream } from 'pino';
import type { StateChange, StateView } from '../state/view';
import type { StateBatch } from '../state/source';

/**
 * A worker thread's log destination: finished JSON lines are collected and posted to the
 * main thread once per event-loop turn (one message for many lines), where they join the
 * process's one log stream. flush() posts what is pending at once (before the thread ends).
 */
export class LineRelay implements DestinationStream {
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly post: (lines: string) => void) {}

  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending.join('');
    this.pending = [];
    this.post(lines);
  };
}

/** The main thread writes a worker's lines one by one, so a plain-format destination formats each. */
export function writeLines(dest: DestinationStream, lines: string): void {
  let start = 0;
  for (let nl = lines.indexOf('\n'); nl !== -1; nl = lines.indexOf('\n', start)) {
    dest.write(lines.slice(start, nl + 1));
    start = nl + 1;
  }
  if (start < lines.length) dest.write(lines.slice(start));
}

/** The whole state as one batch (what a new worker thread starts from). */
export function snapshotBatch(view: StateView): StateBatch {
  return { workloads: { upsert: view.allWorkloads() }, services: { upsert: view.allServices() }, policies: { upsert: view.allPolicies() } };
}

/** One applied change as the batch that makes a replica equal again (removals, then upserts, as applied). */
export function changeBatch(ch: StateChange): StateBatch {
  const policies = { upsert: [] as NonNullable<StateChange['changedPolicies'][number]['after']>[], remove: [] as string[] };
  for (const d of ch.changedPolicies) {
    if (d.after) policies.upsert.push(d.after);
    else policies.remove.push(d.key);
  }
  return {
    workloads: { upsert: [...ch.workloadsAdded, ...ch.workloadsUpdated], remove: ch.workloadsRemoved.map((w) => w.uid) },
    services: { upsert: ch.servicesUpserted, remove: ch.servicesRemoved },
    policies,
  };
}

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/**
 * One /metrics for the process: the main thread's registry plus every worker thread's. A
 * family the workers also keep (connection counters, pools, failures) is summed per label
 * set; a family only the main thread has (process, state, certificates, xDS) is its own.
 */
export async function mergedMetrics(own: Registry, workers: readonly MetricJson[][]): Promise<string> {
  const shared = new Set(workers.flatMap((w) => w.map((m) => m.name)));
  const mine = (await own.getMetricsAsJSON()) as MetricJson[];
  const asSum = (m: MetricJson): MetricJson => ({ ...m, aggregator: 'sum' });
  const all = [mine.map((m) => (shared.has(m.name) ? asSum(m) : { ...m, aggregator: 'first' as const })), ...workers.map((w) => w.map(asSum))];
  return AggregatorRegistry.aggregate(all).metrics();
}

/**
 * One /config_dump section from every thread's own: numbers add up (counters, live
 * connections), lists are joined (pool keys, sessions), objects merge key by key, and
 * anything else is the main thread's (the first value).
 */
export function mergeDumps(values: readonly unknown[]): unknown {
  const present = values.filter((v) => v !== undefined);
  const first = present[0];
  if (present.every((v) => typeof v === 'number')) return (present as number[]).reduce((a, b) => a + b, 0);
  if (present.every((v) => Array.isArray(v))) return (present as unknown[][]).flat();
  if (present.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) {
    const keys = new Set(present.flatMap((v) => Object.keys(v as object)));
    return Object.fromEntries([...keys].map((k) => [k, mergeDumps(present.map((v) => (v as Record<string, unknown>)[k]))]));
  }
  return first;
}
