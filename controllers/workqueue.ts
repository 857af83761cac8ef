// A work queue of keys with client-go's guarantees (util/workqueue):
// - it holds keys, not objects; a key queued twice before it is taken is processed once;
// - a key is never handed to two workers at once: get() marks it processing until done();
// - a key added while it is processing is queued again once, when done() is called;
// - addAfter() delays an add; addRateLimited() delays it by the rate limiter (per-key backoff plus a
//   global bucket); forget() ends a key's backoff;
// - all time goes through an injectable Clock;
// - after shutDown() no key is accepted and waiting get() calls resolve with undefined.

import { type Clock, type TimerHandle, realClock } from './clock.js';
import { type RateLimiter, defaultControllerRateLimiter } from './rate-limiter.js';

export interface WorkQueueOptions<T> {
  clock?: Clock;
  rateLimiter?: RateLimiter<T>;
}

export class WorkQueue<T = string> {
  private readonly clock: Clock;
  private readonly limiter: RateLimiter<T>;
  private queue: T[] = [];
  private head = 0;
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly waiting = new Map<T, { at: number; timer: TimerHandle }>();
  private getters: ((item: T | undefined) => void)[] = [];
  private shuttingDown = false;
  private drainWaiters: (() => void)[] = [];

  constructor(opts: WorkQueueOptions<T> = {}) {
    this.clock = opts.clock ?? realClock;
    this.limiter = opts.rateLimiter ?? defaultControllerRateLimiter<T>(this.clock);
  }

  /** Keys ready to be taken (not counting processing or delayed ones). */
  len(): number {
    return this.queue.length - this.head;
  }
  /** Keys delayed by addAfter/addRateLimited that are not yet ready. */
  delayedLen(): number {
    return this.waiting.size;
  }
  processingLen(): number {
    return this.processing.size;
  }
  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(item: T): void {
    if (this.shuttingDown || this.dirty.has(item)) return;
    this.dirty.add(item);
    // A processing key stays only dirty: done() puts it back in the queue.
    if (this.processing.has(item)) return;
    const g = this.getters.shift();
    if (g) {
      this.dirty.delete(item);
      this.processing.add(item);
      g(item);
      return;
    }
    this.queue.push(item);
  }

  /** Adds the key after ms. A key already waiting keeps the earlier of the two times. */
  addAfter(item: T, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(item);
      return;
    }
    const at = this.clock.now() + ms;
    const w = this.waiting.get(item);
    if (w) {
      if (w.at <= at) return;
      w.timer.cancel();
    }
    const timer = this.clock.setTimer(() => {
      this.waiting.delete(item);
      this.add(item);
    }, ms);
    this.waiting.set(item, { at, timer });
  }

  /** Adds the key after the rate limiter's delay (one more failure for it). */
  addRateLimited(item: T): void {
    this.addAfter(item, this.limiter.when(item));
  }
  forget(item: T): void {
    this.limiter.forget(item);
  }
  numRequeues(item: T): number {
    return this.limiter.numRequeues(item);
  }

  /** Takes the next key without waiting, or undefined when none is ready. */
  tryGet(): T | undefined {
    if (this.head >= this.queue.length) return undefined;
    const item = this.queue[this.head++] as T;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.dirty.delete(item);
    this.processing.add(item);
    return item;
  }

  /** Waits for the next key; undefined once the queue is shut down. Call done(key) afterwards. */
  get(): Promise<T | undefined> {
    const item = this.tryGet();
    if (item !== undefined) return Promise.resolve(item);
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** The worker finished the key: if it was added meanwhile, it is queued again. */
  done(item: T): void {
    this.processing.delete(item);
    if (this.dirty.has(item)) {
      this.dirty.delete(item);
      this.add(item);
    }
    if (this.processing.size === 0) {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  /** Stops accepting keys, cancels delayed ones and releases waiting get() calls. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) w.timer.cancel();
    this.waiting.clear();
    for (const g of this.getters.splice(0)) g(undefined);
  }

  /** Resolves when no key is being processed (use after shutDown to wait for workers). */
  drained(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}
