// Rate limiters for the workqueue, after client-go's util/workqueue: when(item) says how long an
// item must wait before it is processed again; forget(item) clears its failure history.

import { type Clock, realClock } from './clock.js';

export interface RateLimiter<T = string> {
  /** Delay in ms before `item` may be processed again; records one more failure for it. */
  when(item: T): number;
  /** The item succeeded: clears its failure history. */
  forget(item: T): void;
  /** How many times the item failed since it was last forgotten. */
  numRequeues(item: T): number;
}

/** Per-item exponential backoff: base * 2^failures, capped at max. */
export class ItemExponentialRateLimiter<T = string> implements RateLimiter<T> {
  private failures = new Map<T, number>();
  constructor(
    private readonly baseMs = 5,
    private readonly maxMs = 5 * 60_000,
  ) {}
  when(item: T): number {
    const n = this.failures.get(item) ?? 0;
    this.failures.set(item, n + 1);
    // 2^n overflows to Infinity long after it passed maxMs; Math.min keeps the cap exact.
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }
  forget(item: T): void {
    this.failures.delete(item);
  }
  numRequeues(item: T): number {
    return this.failures.get(item) ?? 0;
  }
}

/** A global token bucket (qps tokens a second, up to burst): reserves a token and returns the wait
 * until it is available. Shared by all items, so a storm of failures cannot flood the store. */
export class TokenBucketRateLimiter<T = string> implements RateLimiter<T> {
  private tokens: number;
  private last: number;
  constructor(
    private readonly qps = 10,
    private readonly burst = 100,
    private readonly clock: Clock = realClock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }
  when(_item: T): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    // A negative balance is a reservation: the item waits until the bucket refills to zero.
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
  forget(_item: T): void {}
  numRequeues(_item: T): number {
    return 0;
  }
}

/** The longest delay any of the limiters asks for. */
export class MaxOfRateLimiter<T = string> implements RateLimiter<T> {
  private readonly limiters: RateLimiter<T>[];
  constructor(...limiters: RateLimiter<T>[]) {
    this.limiters = limiters;
  }
  when(item: T): number {
    let d = 0;
    for (const l of this.limiters) d = Math.max(d, l.when(item));
    return d;
  }
  forget(item: T): void {
    for (const l of this.limiters) l.forget(item);
  }
  numRequeues(item: T): number {
    let n = 0;
    for (const l of this.limiters) n = Math.max(n, l.numRequeues(item));
    return n;
  }
}

/** client-go's default controller rate limiter: 5 ms .. 5 min per item, 10 qps / burst 100 overall. */
export function defaultControllerRateLimiter<T = string>(clock: Clock = realClock): RateLimiter<T> {
  return new MaxOfRateLimiter<T>(
    new ItemExponentialRateLimiter<T>(5, 5 * 60_000),
    new TokenBucketRateLimiter<T>(10, 100, clock),
  );
}
