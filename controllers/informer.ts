// Informer: keeps a local cache of one kind in step with the store and tells handlers what changed.
//
// Contract (after client-go's reflector + shared informer):
// - start() lists at a revision R, fills the cache, delivers onAdd for every object, marks itself
//   synced, then watches from R + 1.
// - Each watch event updates the cache and is delivered once: events at or below the revision
//   already applied, and modifications that carry the cached resourceVersion, are dropped.
// - A CompactedError or a broken watch means: list again (with backoff) and deliver the difference
//   between the cache and the new list as synthetic add/update/delete, then watch again. Handlers
//   never see an object twice at one version and never miss its last state.
// - Handlers receive the cached objects themselves: they must not mutate them.
// - addHandlers(h, resyncMs) additionally calls onUpdate(obj, obj) for every cached object once
//   every resyncMs (a periodic resync from the cache, no store I/O), spread over the period in
//   RESYNC_SLICES steps: the objects cached at a period's start, a slice of them per step (an
//   object added later is resynced from the next period on; one gone is skipped). All at once, a
//   resync of 10,000 VMs put the runtime's queue back to ~10,000 (hack/bench-scale).

import type { ApiObject } from '../api/types.js';
import type { ListOptions, ObjectRef, Store, Watch } from '../api/store/types.js';
import { matchesLabelSelector, parseLabelSelector, type LabelSelector } from '../api/store/label-selector.js';
import { type Clock, type TimerHandle, realClock } from './clock.js';
import type { Logger } from './types.js';

export interface InformerHandlers<T extends ApiObject = ApiObject> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  /** Only this namespace. */
  namespace?: string;
  clock?: Clock;
  log?: Logger;
  /** First and longest wait before a list is retried after a failure. */
  relistBackoffMs?: { min: number; max: number };
}

/** The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function cacheKey(ref: { name: string; namespace?: string }): string {
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

/** The inverse of cacheKey, for a given kind. */
export function refFromKey(kind: string, key: string): ObjectRef {
  const i = key.indexOf('/');
  return i < 0 ? { kind, name: key } : { kind, namespace: key.slice(0, i), name: key.slice(i + 1) };
}

function addToIndex(index: Map<string, Set<string>>, value: string, key: string): void {
  let s = index.get(value);
  if (!s) index.set(value, (s = new Set()));
  s.add(key);
}
function removeFromIndex(index: Map<string, Set<string>>, value: string, key: string): void {
  const s = index.get(value);
  if (!s) return;
  s.delete(key);
  if (s.size === 0) index.delete(value);
}

/** How many steps a resync period is spread over. */
export const RESYNC_SLICES = 20;

interface Registration<T extends ApiObject> {
  handlers: InformerHandlers<T>;
  resync?: TimerHandle;
}

export class Informer<T extends ApiObject = ApiObject> {
  readonly kind: string;
  private readonly store: Store;
  private readonly opts: InformerOptions;
  private readonly clock: Clock;
  private readonly items = new Map<string, T>();
  private readonly byNamespace = new Map<string, Set<string>>();
  private readonly byOwner = new Map<string, Set<string>>();
  /** `key=value` of every label -> the objects carrying it: a selector with an equality is served
   *  from its set, not by a pass over the kind (a VC's VMs among 10,000: hack/bench-scale). */
  private readonly byLabel = new Map<string, Set<string>>();
  /** client-go's Indexers: named functions of an object and, per value, the objects giving it. */
  private readonly indexers = new Map<string, { of: (o: T) => readonly string[]; index: Map<string, Set<string>> }>();
  private readonly regs = new Set<Registration<T>>();
  private watch: Watch | undefined;
  private relistTimer: TimerHandle | undefined;
  private relistDelay: number;
  private revision = 0;
  private synced = false;
  private running = false;
  private syncWaiters: (() => void)[] = [];
  /** How many times the informer listed (1 + relists); for tests and metrics. */
  lists = 0;

  constructor(store: Store, kind: string, opts: InformerOptions = {}) {
    this.store = store;
    this.kind = kind;
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.relistDelay = opts.relistBackoffMs?.min ?? 100;
  }

  hasSynced(): boolean {
    return this.synced;
  }
  /** The store revision the cache reflects. */
  lastRevision(): number {
    return this.revision;
  }
  size(): number {
    return this.items.size;
  }

  /** Resolves once the first list has been applied; rejects if the signal aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error(`informer for ${this.kind} stopped before it synced`));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Registers handlers. Objects already cached are delivered to onAdd at once. Returns a remover. */
  addHandlers(handlers: InformerHandlers<T>, resyncMs = 0): () => void {
    const reg: Registration<T> = { handlers };
    this.regs.add(reg);
    if (this.synced) for (const o of this.items.values()) this.deliver(reg, 'add', o);
    if (resyncMs > 0) {
      // Step `slice` (1..RESYNC_SLICES) of a period ends at slice/RESYNC_SLICES of it and
      // delivers the keys up to that share of the period's snapshot.
      let keys: string[] = [];
      let slice = 0;
      let periodStart = this.clock.now();
      const tick = () => {
        if (!this.regs.has(reg)) return;
        if (slice === 0) keys = this.synced ? [...this.items.keys()] : [];
        const from = Math.floor((keys.length * slice) / RESYNC_SLICES);
        slice++;
        const to = Math.floor((keys.length * slice) / RESYNC_SLICES);
        for (let i = from; i < to; i++) {
          const o = this.items.get(keys[i]!);
          if (o) this.deliver(reg, 'update', o, o);
        }
        if (slice === RESYNC_SLICES) {
          slice = 0;
          keys = [];
          periodStart += resyncMs;
        }
        reg.resync = this.clock.setTimer(tick, Math.max(0, periodStart + ((slice + 1) * resyncMs) / RESYNC_SLICES - this.clock.now()));
      };
      reg.resync = this.clock.setTimer(tick, resyncMs / RESYNC_SLICES);
    }
    return () => {
      reg.resync?.cancel();
      this.regs.delete(reg);
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.listAndWatch();
  }

  stop(): void {
    this.running = false;
    this.watch?.close();
    this.watch = undefined;
    this.relistTimer?.cancel();
    for (const r of this.regs) r.resync?.cancel();
  }

  get(ref: { name: string; namespace?: string }): T | undefined {
    return this.items.get(cacheKey(ref));
  }
  getByKey(key: string): T | undefined {
    return this.items.get(key);
  }
  keys(): IterableIterator<string> {
    return this.items.keys();
  }

  list(opts: ListOptions = {}): T[] {
    const sel = parsedSelector(opts.labelSelector);
    const match = (labels: Record<string, string> | undefined): boolean => sel === undefined || matchesLabelSelector(sel, labels);
    const out: T[] = [];
    const eq = sel?.find((r) => r.op === 'in' && r.values.length === 1);
    if (eq?.op === 'in') {
      for (const k of this.byLabel.get(`${eq.key}=${eq.values[0]}`) ?? []) {
        const o = this.items.get(k);
        if (o && (opts.namespace === undefined || (o.metadata.namespace ?? '') === opts.namespace) && match(o.metadata.labels)) out.push(o);
      }
      return out;
    }
    if (opts.namespace !== undefined) {
      for (const k of this.byNamespace.get(opts.namespace) ?? []) {
        const o = this.items.get(k);
        if (o && match(o.metadata.labels)) out.push(o);
      }
      return out;
    }
    for (const o of this.items.values()) if (match(o.metadata.labels)) out.push(o);
    return out;
  }

  /**
   * Adds an index `name` of the values `of` gives for each object (client-go's AddIndexers),
   * built from the objects held and kept with every event after; a second call with the same name
   * keeps the first. Its lookups (byIndex) cost the objects found, not a pass over the kind.
   */
  addIndexer(name: string, of: (o: T) => readonly string[]): void {
    if (this.indexers.has(name)) return;
    const index = new Map<string, Set<string>>();
    for (const [key, o] of this.items) for (const v of of(o)) addToIndex(index, v, key);
    this.indexers.set(name, { of, index });
  }
  /** The objects whose indexer `name` gives `value` (none for an indexer never added). */
  byIndex(name: string, value: string): T[] {
    const out: T[] = [];
    for (const k of this.indexers.get(name)?.index.get(value) ?? []) {
      const o = this.items.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  /** Objects with an ownerReference to this uid. */
  listByOwner(uid: string): T[] {
    const out: T[] = [];
    for (const k of this.byOwner.get(uid) ?? []) {
      const o = this.items.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  private async listAndWatch(): Promise<void> {
    if (!this.running) return;
    let listed;
    try {
      this.lists++;
      listed = await this.store.list<T>(this.kind, { namespace: this.opts.namespace });
    } catch (err) {
      this.opts.log?.warn({ kind: this.kind, err: String(err) }, 'list failed; retrying');
      this.scheduleRelist();
      return;
    }
    if (!this.running) return;
    this.relistDelay = this.opts.relistBackoffMs?.min ?? 100;
    this.replace(listed.items, listed.revision);
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    try {
      this.startWatch(listed.revision);
    } catch (err) {
      this.opts.log?.warn({ kind: this.kind, err: String(err) }, 'watch failed to start; listing again');
      this.scheduleRelist();
    }
  }

  private startWatch(listRevision: number): void {
    this.watch = this.store.watch<T>(
      this.kind,
      { namespace: this.opts.namespace, fromRevision: listRevision + 1 },
      {
        onEvent: (ev) => {
          // Strictly older only: a batch writes several objects at one revision, and each must land.
          if (!this.running || ev.revision < this.revision) return;
          if (ev.type === 'DELETED') this.remove(ev.object);
          else this.upsert(ev.object);
          this.revision = ev.revision;
        },
        onError: (err) => {
          if (!this.running) return;
          this.opts.log?.info({ kind: this.kind, err: err.message }, 'watch ended; listing again');
          this.watch = undefined;
          this.scheduleRelist();
        },
      },
    );
  }

  private scheduleRelist(): void {
    if (!this.running) return;
    const d = this.relistDelay;
    this.relistDelay = Math.min(this.opts.relistBackoffMs?.max ?? 5000, d * 2);
    this.relistTimer = this.clock.setTimer(() => void this.listAndWatch(), d);
  }

  /** Applies a full list: synthetic deletes for what vanished, then adds and updates. */
  private replace(items: T[], revision: number): void {
    const seen = new Set<string>();
    for (const o of items) seen.add(cacheKey(o.metadata));
    for (const [k, o] of [...this.items]) if (!seen.has(k)) this.remove(o);
    for (const o of items) this.upsert(o);
    this.revision = Math.max(this.revision, revision);
  }

  private upsert(obj: T): void {
    const key = cacheKey(obj.metadata);
    const old = this.items.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    this.index(key, obj);
    for (const r of this.regs) {
      if (old) this.deliver(r, 'update', old, obj);
      else this.deliver(r, 'add', obj);
    }
  }

  private remove(obj: T): void {
    const key = cacheKey(obj.metadata);
    const old = this.items.get(key);
    if (!old) return;
    this.unindex(key, old);
    this.items.delete(key);
    for (const r of this.regs) this.deliver(r, 'delete', obj);
  }

  private index(key: string, o: T): void {
    addToIndex(this.byNamespace, o.metadata.namespace ?? '', key);
    for (const ref of o.metadata.ownerReferences ?? []) addToIndex(this.byOwner, ref.uid, key);
    for (const [k, v] of Object.entries(o.metadata.labels ?? {})) addToIndex(this.byLabel, `${k}=${v}`, key);
    for (const { of, index } of this.indexers.values()) for (const v of of(o)) addToIndex(index, v, key);
  }
  private unindex(key: string, o: T): void {
    removeFromIndex(this.byNamespace, o.metadata.namespace ?? '', key);
    for (const ref of o.metadata.ownerReferences ?? []) removeFromIndex(this.byOwner, ref.uid, key);
    for (const [k, v] of Object.entries(o.metadata.labels ?? {})) removeFromIndex(this.byLabel, `${k}=${v}`, key);
    for (const { of, index } of this.indexers.values()) for (const v of of(o)) removeFromIndex(index, v, key);
  }

  /** A handler that throws must not stop the informer or the other handlers. */
  private deliver(r: Registration<T>, what: 'add' | 'update' | 'delete', a: T, b?: T): void {
    try {
      if (what === 'add') r.handlers.onAdd?.(a);
      else if (what === 'update') r.handlers.onUpdate?.(a, b as T);
      else r.handlers.onDelete?.(a);
    } catch (err) {
      this.opts.log?.error({ kind: this.kind, err: String(err) }, 'informer handler threw');
    }
  }
}

/** Parsed selectors by their text (controllers ask with a handful of texts, again and again). */
const SELECTORS = new Map<string, LabelSelector>();
function parsedSelector(text: string | undefined): LabelSelector | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let sel = SELECTORS.get(text);
  if (!sel) {
    sel = parseLabelSelector(text);
    if (SELECTORS.size > 10_000) SELECTORS.clear();
    SELECTORS.set(text, sel);
  }
  return sel;
}
