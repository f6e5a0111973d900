import type { DestinationStream } from 'pino';

/** Collects JSON log records in memory, so tests observe the product through its logs. */
export class LogCollector implements DestinationStream {
  readonly lines: Record<string, unknown>[] = [];
  write(s: string): void {
    for (const l of s.split('\n')) {
      if (l === '') continue;
      this.lines.push(JSON.parse(l) as Record<string, unknown>);
    }
  }
  find(pred: (r: Record<string, unknown>) => boolean): Record<string, unknown>[] {
    return this.lines.filter(pred);
  }
  text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }
}
