import type { FetchPriority } from './types';

const ORDER: readonly FetchPriority[] = ['realtime', 'warmup', 'background'];

/**
 * FIFO per priority: realtime (data path) > warmup (prefetch) > background (refresh), as
 * ztunnel's SecretManager orders CSRs. An item is queued at most once; asking again with
 * a higher priority moves it forward (a connection waiting on a prefetch overtakes).
 */
export class FetchQueue<T> {
  private readonly lanes: Record<FetchPriority, T[]> = { realtime: [], warmup: [], background: [] };
  private readonly where = new Map<T, FetchPriority>();

  /** Queues `item`, or raises its priority if already queued lower. Returns its lane. */
  push(item: T, priority: FetchPriority): FetchPriority {
    const cur = this.where.get(item);
    if (cur !== undefined) {
      if (ORDER.indexOf(priority) >= ORDER.indexOf(cur)) return cur;
      this.remove(item);
    }
    this.lanes[priority].push(item);
    this.where.set(item, priority);
    return priority;
  }

  remove(item: T): void {
    const cur = this.where.get(item);
    if (cur === undefined) return;
    const lane = this.lanes[cur];
    lane.splice(lane.indexOf(item), 1);
    this.where.delete(item);
  }

  has(item: T): boolean {
    return this.where.has(item);
  }

  /** The oldest item of the highest non-empty priority. */
  shift(): T | undefined {
    for (const p of ORDER) {
      const item = this.lanes[p].shift();
      if (item !== undefined) {
        this.where.delete(item);
        return item;
      }
    }
    return undefined;
  }

  get size(): number {
    return this.where.size;
  }
}
