import type { LocalRateLimit } from './types';

/** One token bucket, refilled lazily: `tokensPerFill` every `fillIntervalMs`, never above `maxTokens`. */
export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    private readonly spec: Pick<LocalRateLimit, 'maxTokens' | 'tokensPerFill' | 'fillIntervalMs'>,
    now: number,
  ) {
    this.tokens = spec.maxTokens;
    this.lastFill = now;
  }

  /** Whether the bucket has the same shape as `spec` (a config change replaces the bucket). */
  sameAs(spec: Pick<LocalRateLimit, 'maxTokens' | 'tokensPerFill' | 'fillIntervalMs'>): boolean {
    return spec.maxTokens === this.spec.maxTokens && spec.tokensPerFill === this.spec.tokensPerFill && spec.fillIntervalMs === this.spec.fillIntervalMs;
  }

  /** Takes one token; false when empty. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** The `x-ratelimit-*` headers (limit, remaining, seconds until the next fill). */
  /** Tokens left now (after a lazy refill). */
  remaining(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens);
  }

  headers(now: number): Record<string, string> {
    this.refill(now);
    const window = Math.max(1, Math.round(this.spec.fillIntervalMs / 1000));
    const reset = Math.max(0, Math.ceil((this.lastFill + this.spec.fillIntervalMs - now) / 1000));
    return {
      'x-ratelimit-limit': `${this.spec.maxTokens}, ${this.spec.maxTokens};w=${window}`,
      'x-ratelimit-remaining': String(Math.floor(this.tokens)),
      'x-ratelimit-reset': String(reset),
    };
  }

  dump(now: number): unknown {
    this.refill(now);
    return { tokens: Math.floor(this.tokens), ...this.spec };
  }

  private refill(now: number): void {
    const fills = Math.floor((now - this.lastFill) / this.spec.fillIntervalMs);
    if (fills <= 0) return;
    this.tokens = Math.min(this.spec.maxTokens, this.tokens + fills * this.spec.tokensPerFill);
    this.lastFill += fills * this.spec.fillIntervalMs;
  }
}
