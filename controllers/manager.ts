// ControllerManager: runs a set of ControllerSpecs over one shared cache.
//
// - The cache (one informer per kind any controller reads) starts at once, also on a standby, so a
//   new leader starts from a warm cache.
// - With leader election (the default), controllers run only during a leadership term. A term
//   starts them once every cache has synced and gives them the FencedStore, so each write is
//   conditional on the term's fence; the end of a term aborts every worker at once, and the
//   manager goes back to standby.
// - Without election (tests, or a caller that guarantees a single manager) controllers start as
//   soon as the caches synced and write to the store directly.
// - While leading, Events older than an hour are expired periodically.

import { setMaxListeners } from 'node:events';
import type { Store } from '../api/store/types.js';
import { SharedCache } from './cache.js';
import { Controller } from './controller.js';
import { StoreEventRecorder, expireEvents } from './events.js';
import { FencedStore } from './fenced-store.js';
import { LeaderElector } from './leader-election.js';
import { type ManagerMetrics, instrumentStore } from './metrics.js';
import type { ControllerSpec, Logger } from './types.js';
import { silentLogger } from './log.js';

export interface ManagerOptions {
  store: Store;
  /** The controllers, or a function building them over the manager's cache (GC needs it). */
  specs: ControllerSpec[] | ((cache: SharedCache) => ControllerSpec[]);
  identity: string;
  /** Default true. */
  leaderElection?: boolean;
  leaseTtlSeconds?: number;
  electionKey?: string;
  log?: Logger;
  metrics?: ManagerMetrics;
  /** How often expired Events are removed while leading; default 5 minutes. 0 = never. */
  eventCleanupMs?: number;
  /** Extra kinds to cache even if no controller declares them. */
  cacheKinds?: string[];
}

export class ControllerManager {
  readonly cache: SharedCache;
  readonly store: Store;
  readonly elector: LeaderElector | undefined;
  private readonly o: ManagerOptions;
  private readonly log: Logger;
  private readonly specs: ControllerSpec[];
  private controllers: Controller[] = [];
  private running = false;
  private termStarted = false;
  private stopAll = new AbortController();
  private cleanupTimer: NodeJS.Timeout | undefined;
  private recorder: StoreEventRecorder | undefined;
  private termDone: Promise<void> = Promise.resolve();

  constructor(opts: ManagerOptions) {
    this.o = opts;
    this.log = opts.log ?? silentLogger();
    this.store = opts.metrics ? instrumentStore(opts.store, opts.metrics.storeLatency) : opts.store;
    // Bytes in the store that are not an object (written around vcctl) are skipped by lists and
    // watches; this manager says which key, at error level.
    this.store.onUndecodable ??= (err) => this.log.error({ err: err.message }, 'skipped a stored value that is not an object');
    this.cache = new SharedCache(this.store, { log: this.log });
    this.specs = typeof opts.specs === 'function' ? opts.specs(this.cache) : opts.specs;
    const names = new Set<string>();
    for (const s of this.specs) {
      if (names.has(s.name)) throw new Error(`two controllers are named "${s.name}": controller names must be unique`);
      names.add(s.name);
      for (const k of [s.forKind, ...(s.owns ?? []), ...(s.watches ?? []).map((w) => w.kind)]) this.cache.informer(k);
    }
    for (const k of opts.cacheKinds ?? []) this.cache.informer(k);
    if (opts.leaderElection !== false) {
      this.elector = new LeaderElector({
        store: this.store,
        identity: opts.identity,
        ttlSeconds: opts.leaseTtlSeconds ?? 10,
        key: opts.electionKey,
        log: this.log,
        onStartedLeading: (term) => this.startTerm(new FencedStore(this.store, this.elector as LeaderElector), term.signal),
        onStoppedLeading: () => this.termDone,
      });
    }
  }

  /** The controllers of the current term (empty on a standby). */
  activeControllers(): readonly Controller[] {
    return this.controllers;
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : true;
  }
  /** Ready: a standby with a synced cache, or a leader whose controllers run. */
  isReady(): boolean {
    if (!this.running) return false;
    if (this.elector && !this.elector.isLeader()) return this.cache.hasSynced();
    return this.termStarted;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.cache.start();
    this.o.metrics?.leader.set(0);
    if (this.elector) void this.elector.start();
    else await this.startTerm(this.store, this.stopAll.signal);
  }

  /** Stops the controllers, releases leadership and stops the cache. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopAll.abort();
    if (this.elector) await this.elector.shutdown();
    await this.termDone;
    this.cache.stop();
    this.running = false;
  }

  private async startTerm(store: Store, signal: AbortSignal): Promise<void> {
    // Every informer wait and every running reconcile listens on the term's signal.
    setMaxListeners(0, signal);
    let finish!: () => void;
    this.termDone = new Promise((r) => { finish = r; });
    try {
      await this.cache.waitForSync(signal);
    } catch {
      finish();
      return;
    }
    if (signal.aborted) {
      finish();
      return;
    }
    const recorder = new StoreEventRecorder(store, { source: this.o.identity, log: this.log });
    this.recorder = recorder;
    this.controllers = this.specs.map(
      (spec) => new Controller(spec, { cache: this.cache, store, events: recorder, log: this.log, signal, metrics: this.o.metrics }),
    );
    for (const c of this.controllers) c.start();
    this.termStarted = true;
    this.o.metrics?.leader.set(1);
    const cleanupMs = this.o.eventCleanupMs ?? 5 * 60_000;
    if (cleanupMs > 0) {
      this.cleanupTimer = setInterval(() => {
        expireEvents(store).catch((err: unknown) => this.log.warn({ err: String(err) }, 'event expiry failed'));
      }, cleanupMs);
      this.cleanupTimer.unref();
    }
    this.log.info({ identity: this.o.identity, controllers: this.controllers.map((c) => c.spec.name) }, 'controllers started');
    const end = async () => {
      clearInterval(this.cleanupTimer);
      recorder.stop();
      this.termStarted = false;
      this.o.metrics?.leader.set(0);
      const cs = this.controllers;
      this.controllers = [];
      await Promise.all(cs.map((c) => c.stop()));
      finish();
    };
    if (signal.aborted) void end();
    else signal.addEventListener('abort', () => void end(), { once: true });
  }

  /** Flushes pending Events (tests). */
  async flushEvents(): Promise<void> {
    await this.recorder?.flush();
  }
}
