/**
 * A token bucket per key (a source address): a burst, then a steady rate. Time comes from a
 * monotonic clock, so a wall-clock step (NTP, a suspended VM, a user setting the date) neither
 * silences answers for the length of the step nor refills every bucket at once.
 */
export interface RateLimitOptions {
  burst: number;
  /** Tokens added per millisecond. */
  refillPerMs: number;
  /** Keys tracked; the one seen least recently is forgotten first. */
  maxKeys: number;
  /**
   * Answers to one tag (a query id) per key: only the first costs a token, so a sender's
   * repeats of one query do not use up its budget; more are refused. @default 1
   */
  perTag?: number;
  /** Milliseconds from a monotonic clock. @default performance.now */
  now?: () => number;
}

export class RateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number; tag?: string; tagged: number }>();
  private readonly now: () => number;

  constructor(private readonly options: RateLimitOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes a token for `key` (none for a repeat of its last `tag`); false when none is left. */
  allow(key: string, tag?: string): boolean {
    const now = this.now();
    const { burst, refillPerMs, maxKeys, perTag = 1 } = this.options;
    const bucket = this.buckets.get(key) ?? { tokens: burst, at: now, tagged: 0 };
    // max(0, …): even a clock that went backwards (a faulty injected one) never drains a bucket.
    bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * refillPerMs);
    bucket.at = now;
    this.buckets.delete(key);
    if (this.buckets.size >= maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, bucket);
    if (tag !== undefined && tag === bucket.tag) {
      if (bucket.tagged >= perTag) return false;
      bucket.tagged += 1;
      return true;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    bucket.tag = tag;
    bucket.tagged = 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}
