/** Capped exponential backoff with jitter (ztunnel: ~1s, x2, 20% jitter, cap 150s for CSRs). */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  multiplier?: number;
  jitter?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}
  /** The delay before the next attempt; grows until reset(). */
  next(): number {
    const mult = this.opts.multiplier ?? 2;
    const base = Math.min(this.opts.maxMs, this.opts.initialMs * Math.pow(mult, this.attempt));
    this.attempt++;
    const j = this.opts.jitter ?? 0.2;
    const r = (this.opts.random ?? Math.random)();
    return Math.max(0, Math.min(this.opts.maxMs, Math.round(base * (1 - j + 2 * j * r))));
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
