// When a watching sync runs: change notifications are debounced, at most one sync runs at a time,
// and any number of requests that arrive while a sync runs lead to exactly one more sync after it
// (the same rule as client-go's workqueue for one key: never twice at once, re-queued once).

export interface SyncSchedulerOptions {
  /** Quiet time after the last request before a sync starts. */
  debounceMs: number;
  /** The sync. Its errors go to onError; the scheduler keeps running. */
  run: () => Promise<void>;
  onError?: (err: unknown) => void;
  /** Injectable for tests. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export class SyncScheduler {
  private timer: unknown;
  private running: Promise<void> | undefined;
  private pending = false;
  private closed = false;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly opts: SyncSchedulerOptions) {
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  /** Asks for a sync after the debounce time; requests within it collapse into one. */
  request(): void {
    if (this.closed) return;
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => {
      this.timer = undefined;
      this.fire();
    }, this.opts.debounceMs);
  }

  /** Asks for a sync now (no debounce); still never concurrent with a running one. */
  requestNow(): void {
    if (this.closed) return;
    if (this.timer !== undefined) {
      this.clearTimer(this.timer);
      this.timer = undefined;
    }
    this.fire();
  }

  /** Whether a sync runs or is due. */
  get busy(): boolean {
    return this.running !== undefined || this.pending || this.timer !== undefined;
  }

  /** Resolves when no sync runs and none is pending or debouncing. */
  async idle(): Promise<void> {
    while (this.busy) {
      if (this.running) await this.running;
      else await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Stops scheduling; waits for a running sync to finish. Pending requests are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    this.pending = false;
    if (this.timer !== undefined) {
      this.clearTimer(this.timer);
      this.timer = undefined;
    }
    if (this.running) await this.running;
  }

  private fire(): void {
    if (this.closed) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = this.loop();
  }

  // `running` is cleared inside the loop, in the same synchronous step that decides there is no
  // pending request: a request can never land between that decision and the clearing and be lost.
  private async loop(): Promise<void> {
    await Promise.resolve(); // `running` is assigned before the first run starts
    try {
      do {
        this.pending = false;
        try {
          await this.opts.run();
        } catch (err) {
          this.opts.onError?.(err);
        }
      } while (this.pending && !this.closed);
    } finally {
      this.running = undefined;
    }
  }
}
