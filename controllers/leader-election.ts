// Leader election on the store's leases (LeaseApi), the same on etcd and on the embedded store.
//
// A candidate grants itself a lease of ttlSeconds and tries to create the election key bound to
// it (putIfAbsent). Whoever created the key leads; its fence is {key, createRevision}. The key
// disappears when the lease expires or is revoked, and the next candidate creates it anew with a
// new createRevision, so every write fenced by an older leader fails in the store.
//
// While leading, the lease is renewed every ttl/3, each renewal sent to every store member at once
// and none waiting for the one before (renewWhileLeading). Leadership is lost, and the term's signal
// aborts at once, when any of these happens:
// - a keepAlive fails with NotFoundError (the lease expired),
// - the election key is deleted or changes (watchRaw),
// - the renewal deadline passes: no keepAlive *sent* in the last 2/3 ttl succeeded. This is the
//   case of a process paused (SIGSTOP, GC, swap) past its lease: when it resumes, currentFence()
//   already returns undefined before any timer had a chance to run.
// After a loss the elector goes back to standby and campaigns again.

import { NotFoundError, type Fence, type Store, type Watch } from '../api/store/types.js';
import type { Logger } from './types.js';

export const DEFAULT_ELECTION_KEY = 'virtualinux.org/leader/vc-manager';

export interface LeaderElectorOptions {
  store: Store;
  identity: string;
  ttlSeconds: number;
  key?: string;
  log?: Logger;
  /** Called when this process becomes leader. The signal aborts when the term ends. */
  onStartedLeading(term: LeaderTerm): void | Promise<void>;
  /** Called after a term ended (lost, or released on shutdown). */
  onStoppedLeading?(reason: string): void | Promise<void>;
}

export interface LeaderTerm {
  fence: Fence;
  signal: AbortSignal;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export class LeaderElector {
  readonly key: string;
  private readonly o: LeaderElectorOptions;
  private readonly ttlMs: number;
  private readonly renewDeadlineMs: number;
  private fence: Fence | undefined;
  /** Send time of the last keepAlive (or grant) that succeeded. */
  private lastRenewSent = 0;
  private leaseId: string | undefined;
  private term: AbortController | undefined;
  private stop = new AbortController();
  private running: Promise<void> | undefined;
  /** How many terms this elector has led (tests). */
  terms = 0;

  constructor(opts: LeaderElectorOptions) {
    this.o = opts;
    this.key = opts.key ?? DEFAULT_ELECTION_KEY;
    this.ttlMs = opts.ttlSeconds * 1000;
    this.renewDeadlineMs = (this.ttlMs * 2) / 3;
  }

  isLeader(): boolean {
    return this.currentFence() !== undefined;
  }

  /** The fence for writes now; undefined unless leading within the renewal deadline. */
  currentFence(): Fence | undefined {
    if (!this.fence) return undefined;
    if (Date.now() - this.lastRenewSent > this.renewDeadlineMs) {
      this.lose('renewal deadline passed');
      return undefined;
    }
    return this.fence;
  }

  /** Campaigns until shutdown(); resolves when stopped. */
  start(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Ends the current term, revokes the lease (the key goes at once) and stops campaigning. */
  async shutdown(): Promise<void> {
    this.stop.abort();
    this.lose('shutting down');
    await this.running;
    await this.revoke();
  }

  private lose(reason: string): void {
    if (!this.term || this.term.signal.aborted) return;
    this.fence = undefined;
    this.o.log?.warn({ identity: this.o.identity, reason }, 'leadership lost');
    this.term.abort(new Error(`leadership lost: ${reason}`));
  }

  private async revoke(): Promise<void> {
    const id = this.leaseId;
    this.leaseId = undefined;
    if (id) await this.o.store.leases.revoke(id).catch(() => undefined);
  }

  private async grant(): Promise<string> {
    const sent = Date.now();
    const id = await this.o.store.leases.grant(this.o.ttlSeconds);
    this.lastRenewSent = sent;
    this.leaseId = id;
    return id;
  }

  /** Renews the lease; a success counts from its send time (the latest of those that succeeded). */
  private async keepAlive(id: string, deadline?: (sent: number) => number): Promise<void> {
    const sent = Date.now();
    await this.o.store.leases.keepAlive(id, deadline?.(sent));
    this.lastRenewSent = Math.max(this.lastRenewSent, sent);
  }

  private async loop(): Promise<void> {
    const stop = this.stop.signal;
    const leases = this.o.store.leases;
    const retryMs = Math.min(1000, this.ttlMs / 4);
    while (!stop.aborted) {
      try {
        // Standby: keep a live lease and try to take the key whenever it may be free.
        let id = this.leaseId ?? (await this.grant());
        let rev: number | undefined;
        while (!stop.aborted) {
          rev = await leases.putIfAbsent(this.key, this.o.identity, id);
          if (rev !== undefined) break;
          const changed = new AbortController();
          const w = leases.watchRaw(this.key, () => changed.abort());
          try {
            // The key may have gone between putIfAbsent and the watch: re-check once.
            if ((await leases.getRaw(this.key)) !== undefined) {
              await sleep(retryMs, AbortSignal.any([stop, changed.signal]));
            }
          } finally {
            w.close();
          }
          try {
            await this.keepAlive(id);
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err;
            id = await this.grant();
          }
        }
        if (stop.aborted || rev === undefined) break;
        await this.lead(id, rev);
      } catch (err) {
        // A lease that expired while standing by (a claim or a read stalled past the TTL) cannot be
        // renewed: the next round grants a new one (it used to claim with the dead one forever).
        if (err instanceof NotFoundError) this.leaseId = undefined;
        this.o.log?.warn({ identity: this.o.identity, err: String(err) }, 'leader election error; retrying');
        await sleep(retryMs, stop);
      }
    }
  }

  private async lead(id: string, createRevision: number): Promise<void> {
    const term = new AbortController();
    this.term = term;
    this.fence = { key: this.key, createRevision };
    this.terms++;
    this.o.log?.info({ identity: this.o.identity, createRevision }, 'became leader');
    let keyWatch: Watch | undefined;
    const deadlineTimer = setInterval(() => this.currentFence(), 100);
    try {
      keyWatch = this.o.store.leases.watchRaw(this.key, () => this.lose('the election key changed or was deleted'));
      this.renewWhileLeading(id, term.signal);
      // The key may have been lost before the watch was set up.
      const now = await this.o.store.leases.getRaw(this.key);
      if (now?.createRevision !== createRevision) this.lose('the election key is no longer ours');
      // Not awaited: starting controllers (waiting for caches) must not delay lease renewal.
      if (!term.signal.aborted) {
        const fence = this.fence;
        void Promise.resolve()
          .then(() => this.o.onStartedLeading({ fence, signal: term.signal }))
          .catch((err: unknown) => this.lose(`could not start leading: ${String(err)}`));
      }
      if (!term.signal.aborted) await new Promise<void>((resolve) => term.signal.addEventListener('abort', () => resolve(), { once: true }));
    } catch (err) {
      this.lose(`error while leading: ${String(err)}`);
    } finally {
      clearInterval(deadlineTimer);
      keyWatch?.close();
      this.fence = undefined;
      // A lost lease cannot be reused; revoking also removes the key if we somehow still hold it.
      await this.revoke();
      const reason = term.signal.reason instanceof Error ? term.signal.reason.message : 'stopped';
      await this.o.onStoppedLeading?.(reason);
    }
  }

  /**
   * Renews the lease every ttl/3 until the term ends. A renewal is not awaited before the next one
   * is due (a slow answer must not hold the next renewal back: the deadline counts from the send
   * time of the last renewal that succeeded), at most 3 are in flight, and a failed one is followed
   * by another within a quarter of the period. Each asks every store member at once
   * (LeaseApi.keepAlive), so a member that hangs or is cut off costs nothing.
   */
  private renewWhileLeading(id: string, signal: AbortSignal): void {
    const every = this.ttlMs / 3;
    const retryMs = Math.min(250, every / 4);
    let inFlight = 0;
    let lastWarned = 0;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (ms: number): void => {
      clearTimeout(timer);
      if (!signal.aborted) timer = setTimeout(renew, ms);
    };
    const renew = (): void => {
      schedule(every);
      if (signal.aborted || inFlight >= 3) return;
      inFlight++;
      this.keepAlive(id, (sent) => sent + this.renewDeadlineMs).catch(
        (err: unknown) => {
          if (signal.aborted) return;
          if (err instanceof NotFoundError) return this.lose('the lease expired');
          if (Date.now() - lastWarned > every) {
            lastWarned = Date.now();
            this.o.log?.warn({ identity: this.o.identity, err: String(err) }, 'lease renewal failed; retrying');
          }
          schedule(retryMs);
        },
      ).finally(() => { inFlight--; });
    };
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    schedule(every);
  }
}
