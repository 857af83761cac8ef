// Controller: runs one ControllerSpec: feeds its work queue from the shared informers and runs N
// workers that call reconcile. Outcomes map to queue actions in exactly one place (settle()):
//   done                 -> forget the key's backoff (and clear this controller's own stall)
//   {requeueAfterMs}     -> forget the backoff, add the key again after that delay (and clear
//                           this controller's own stall: the reconcile succeeded)
//   StallingError        -> forget, no retry; <Controller>Stalled=True on the object (rolled up into
//                           Stalled by api/conditions.ts: setOwned) and a Warning Event
//   any other error,
//   a timeout            -> add the key again with per-key exponential backoff
// A reconcile runs with a signal that aborts on shutdown, on loss of leadership and at its timeout.
// A timed-out reconcile is abandoned (its promise is left to settle on its own) and counts as an
// error; the key is released so a retry can run.

import type { ApiObject, Condition } from '../api/types.js';
import { type ObjectRef, NotFoundError, ConflictError, FencedError, type Store } from '../api/store/types.js';
import {
  getCondition, ownedConditionType, RECONCILING, setCondition, setOwned, stalledConditionType, STALLED, type Aggregate, type ConditionInput,
} from '../api/conditions.js';
import { classify, conditionEffects, type Outcome } from './outcome.js';
import { writeStatusOver } from '../api/status-writer.js';
import { resolveKind } from '../api/kinds.js';
import { describeRef } from '../api/store/object-semantics.js';
import { formatPath, validateObject } from '../api/validation/index.js';
import type { SharedCache } from './cache.js';
import { type Clock, type TimerHandle, realClock } from './clock.js';
import { cacheKey, refFromKey, type InformerHandlers } from './informer.js';
import { countStore, type ManagerMetrics, type ReconcileResultLabel } from './metrics.js';
import type { RateLimiter } from './rate-limiter.js';
import {
  type ControllerSpec, type EventRecorder, type Logger, type ReconcileContext, type ReconcileResult,
} from './types.js';
import { WorkQueue } from './workqueue.js';
import { ownerRefs, sameSignature } from './change-filter.js';

export const DEFAULT_WORKERS = 2;
export const DEFAULT_RESYNC_MS = 10 * 60_000;
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;
/** How long a reconcile that called progressing() runs before Reconciling True is written. */
export const PROGRESSING_DELAY_MS = 1_000;

export interface ControllerDeps {
  cache: SharedCache;
  /** The (fenced) store reconciles write through. */
  store: Store;
  events: EventRecorder;
  log: Logger;
  /** Aborts every worker at once: shutdown or loss of leadership. */
  signal: AbortSignal;
  metrics?: ManagerMetrics;
  clock?: Clock;
  rateLimiter?: RateLimiter<string>;
}


class ReconcileTimeoutError extends Error {}

/** Whether `kind` is namespaced; a kind not in api/kinds.ts is taken to share `sibling`'s scope. */
function isNamespaced(kind: string, sibling: ApiObject): boolean {
  const info = resolveKind(kind);
  return info ? info.namespaced : sibling.metadata.namespace !== undefined;
}

export class Controller {
  readonly spec: ControllerSpec;
  readonly queue: WorkQueue<string>;
  private readonly deps: ControllerDeps;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly removers: (() => void)[] = [];
  private workers: Promise<void>[] = [];
  /** Reconciles completed, by outcome (tests and benchmarks). */
  readonly counts = { done: 0, requeue: 0, waiting: 0, terminal: 0, error: 0 };
  /** When each key's last reconcile started (clock ms): a resync skips keys reconciled lately. */
  private readonly lastStarted = new Map<string, number>();
  /** Called after each reconcile settles (benchmarks measure latency with it). */
  onSettled?: (key: string, outcome: Outcome['kind']) => void;
  /**
   * The signals of the reconciles running now, aborted with the manager's: one listener on its
   * signal for them all (an EventTarget listener added and removed per reconcile was ~1.5 % of a
   * 10,000-VM manager's CPU, hack/bench-scale).
   */
  private readonly running = new Set<AbortController>();

  constructor(spec: ControllerSpec, deps: ControllerDeps) {
    this.spec = spec;
    deps.signal.addEventListener('abort', () => {
      for (const ac of this.running) ac.abort(deps.signal.reason);
    }, { once: true });
    // Its store requests counted under its name (vcm_store_requests_total: hack/bench-scale prints them per VM).
    this.deps = deps.metrics ? { ...deps, store: countStore(deps.store, deps.metrics.storeRequests, spec.name) } : deps;
    this.clock = deps.clock ?? realClock;
    this.log = deps.log.child({ controller: spec.name });
    this.queue = new WorkQueue<string>({ clock: this.clock, rateLimiter: deps.rateLimiter });
    // Register informers now so the manager can wait for every cache before starting workers.
    for (const kind of this.inputKinds()) deps.cache.informer(kind);
  }

  /** Every kind this controller reads events of. */
  inputKinds(): string[] {
    const s = new Set<string>([this.spec.forKind, ...(this.spec.owns ?? []), ...(this.spec.watches ?? []).map((w) => w.kind)]);
    return [...s];
  }

  /** Hooks the informers and starts the workers. Call once the caches have synced. */
  start(): void {
    const { spec, deps } = this;
    const enqueue = (o: ApiObject) => this.queue.add(cacheKey(o.metadata));
    // A resync delivers the same object as old and new (spread over its period by the informer).
    // It is queued unless the key's last reconcile started within half a resync period: a key
    // reconciled anyway (its own requeue, events) needs no extra pass, so each key is still
    // reconciled at least once every 1.5 periods. All queued, it put the runtime's queue back to
    // ~10,000 VMs mid-run (hack/bench-scale).
    const resyncMs = spec.resyncMs ?? DEFAULT_RESYNC_MS;
    const resync = (o: ApiObject) => {
      const key = cacheKey(o.metadata);
      const last = this.lastStarted.get(key);
      if (last === undefined || this.clock.now() - last >= resyncMs / 2) this.queue.add(key);
    };
    // With forSignature: an update that changes nothing the controller reads is not queued.
    const onUpdate = (o: ApiObject, n: ApiObject) => {
      if (o === n) resync(n);
      else if (!spec.forSignature || !sameSignature(spec.forSignature, o, n)) enqueue(n);
    };
    const onDelete = (o: ApiObject) => {
      this.lastStarted.delete(cacheKey(o.metadata));
      enqueue(o);
    };
    this.hook(spec.forKind, { onAdd: enqueue, onUpdate, onDelete }, resyncMs);
    // An update maps its old and its new version, each key once: a key added twice while a
    // worker takes it at once is reconciled twice (the second add marks it dirty).
    const addAll = (keys: Set<string>) => { for (const k of keys) this.queue.add(k); };
    const owned = spec.ownedSignature;
    for (const kind of spec.owns ?? []) {
      const owners = (o: ApiObject, into = new Set<string>()) => {
        for (const ref of o.metadata.ownerReferences ?? []) {
          if (!ref.controller || ref.kind !== spec.forKind) continue;
          into.add(cacheKey({ name: ref.name, namespace: ownerNamespace(spec.forKind, o) }));
        }
        return into;
      };
      const onOwnedUpdate = (o: ApiObject, n: ApiObject) => {
        if (owned && o !== n && sameSignature(owned, o, n) && sameSignature(ownerRefs, o, n)) return;
        addAll(owners(n, owners(o)));
      };
      const owner = (o: ApiObject) => addAll(owners(o));
      this.hook(kind, { onAdd: owner, onUpdate: onOwnedUpdate, onDelete: owner }, 0);
    }
    for (const w of spec.watches ?? []) {
      const mapped = (o: ApiObject, into = new Set<string>()) => {
        for (const ref of w.map(o)) if (ref.kind === spec.forKind) into.add(cacheKey(ref));
        return into;
      };
      const onWatchedUpdate = (o: ApiObject, n: ApiObject) => {
        if (w.signature && o !== n && sameSignature(w.signature, o, n)) return;
        addAll(mapped(n, mapped(o)));
      };
      const one = (o: ApiObject) => addAll(mapped(o));
      this.hook(w.kind, { onAdd: one, onUpdate: onWatchedUpdate, onDelete: one }, 0);
    }
    for (const source of spec.sources ?? []) {
      this.removers.push(source((ref) => { if (ref.kind === spec.forKind) this.queue.add(cacheKey(ref)); }));
    }
    deps.metrics?.setDepthSource(spec.name, () => this.queue.len() + this.queue.delayedLen());
    const n = spec.workers ?? DEFAULT_WORKERS;
    for (let i = 0; i < n; i++) this.workers.push(this.worker());
    this.log.info({ workers: n }, 'controller started');
  }

  /** Stops taking keys and waits (up to graceMs) for running reconciles to return. */
  async stop(graceMs = 10_000): Promise<void> {
    for (const r of this.removers.splice(0)) r();
    this.queue.shutDown();
    this.deps.metrics?.setDepthSource(this.spec.name, undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.workers),
      new Promise<void>((r) => { timer = setTimeout(r, graceMs); }),
    ]);
    clearTimeout(timer);
    this.log.info({}, 'controller stopped');
  }

  private hook(kind: string, h: InformerHandlers, resyncMs: number): void {
    this.removers.push(this.deps.cache.informer(kind).addHandlers(h, resyncMs));
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        if (this.deps.signal.aborted) continue;
        if (this.deps.cache.informer(this.spec.forKind).getByKey(key)) this.lastStarted.set(key, this.clock.now());
        await this.process(key);
      } catch (err) {
        // process() maps every reconcile outcome itself; this is a bug in the runtime. Keep the
        // worker alive and retry the key.
        this.log.error({ key, err: String(err) }, 'controller runtime error; retrying the key');
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const { spec, deps } = this;
    const ref = refFromKey(spec.forKind, key);
    const log = this.log.child({ key: describeRef(ref) });
    const ac = new AbortController();
    if (deps.signal.aborted) ac.abort(deps.signal.reason);
    this.running.add(ac);
    const timeoutMs = spec.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    // progressing(): Reconciling True is written only once the reconcile has run PROGRESSING_DELAY_MS
    // and still runs (two status writes and a read per reconcile otherwise, for work that ends
    // before anyone could look: hack/bench-scale). settle() waits for that write before clearing it.
    let progressed = false;
    let asked = false;
    let finished = false;
    let progressTimer: TimerHandle | undefined;
    let progressWrite: Promise<void> | undefined;
    // writeFinalStatus: from its call on, the progress write writes nothing (a progress write
    // already stored is cleared by it: on a Conflict it computes again over the stored object),
    // and settle() reads this reconcile's own conditions from what it wrote (the cache lags).
    let final: { written: ApiObject | undefined } | undefined;
    const controller = this;
    const ctx: ReconcileContext = {
      store: deps.store, cache: deps.cache, events: deps.events, log, signal: ac.signal,
      progressing: async (reason, message) => {
        if (asked || ac.signal.aborted) return;
        asked = true;
        progressTimer = this.clock.setTimer(() => {
          if (finished || ac.signal.aborted) return;
          progressed = true;
          progressWrite = (async () => {
            // Over the cached copy (a stale one is refused and computed again over the stored one).
            const obj = deps.cache.get(ref) ?? await deps.store.tryGet(ref);
            if (obj) await this.writeOwned(obj, [{ owner: spec.name, aggregate: RECONCILING, status: 'True', reason, message }], undefined, () => final !== undefined);
          })().catch((err: unknown) => log.debug({ err: String(err) }, 'could not write Reconciling'));
        }, PROGRESSING_DELAY_MS);
      },
      // A method: it writes through the store of the context it is called on (a reconcile may
      // pass on a copy of its context with a store of its own, as the storage controller does).
      async writeFinalStatus<T extends ApiObject>(this: ReconcileContext, obj: T, next: (current: T) => T['status'] | undefined): Promise<T | undefined> {
        final = { written: undefined };
        const written = await writeStatusOver<T>(this.store, obj, (current) => {
          const status = next(current);
          const base = (status ?? current.status ?? {}) as { conditions?: Condition[] };
          const cleared = controller.successClears(base.conditions, false);
          if (cleared.length === 0) return status;
          let conditions = base.conditions;
          for (const { owner, aggregate, ...c } of cleared) conditions = setOwned(conditions, aggregate, owner, c, current.metadata.generation ?? 0);
          return { ...base, conditions } as T['status'];
        });
        final.written = written;
        return written;
      },
    };
    const started = performance.now();
    let outcome: Outcome;
    const invalid = this.invalidObject(ref);
    if (invalid) {
      // Admission on the server side: an object that breaks its CRD schema (written around vcctl)
      // is never acted on; Stalled/InvalidSpec and an Event name the field until it is fixed.
      this.running.delete(ac);
      await this.markInvalid(ref, invalid, log);
      this.queue.forget(key);
      this.counts.terminal++;
      this.onSettled?.(key, 'terminal');
      return;
    }
    try {
      const result: ReconcileResult = await Promise.race([
        Promise.resolve().then(() => spec.reconcile(ref, ctx)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const err = new ReconcileTimeoutError(`reconcile of ${describeRef(ref)} exceeded its timeout of ${timeoutMs} ms`);
            ac.abort(err);
            reject(err);
          }, timeoutMs);
        }),
      ]);
      outcome = result && result.requeueAfterMs >= 0 ? { kind: 'requeue', afterMs: result.requeueAfterMs } : { kind: 'done' };
    } catch (err) {
      outcome = classify(err, err instanceof ReconcileTimeoutError);
    } finally {
      clearTimeout(timer);
      finished = true;
      progressTimer?.cancel();
      this.running.delete(ac);
    }
    const seconds = (performance.now() - started) / 1000;
    await progressWrite;
    await this.settle(key, ref, outcome, log, seconds, progressed && !final, final?.written);
  }

  /** The one place where an outcome becomes a queue action, a condition and an Event. */
  private async settle(key: string, ref: ObjectRef, outcome: Outcome, log: Logger, seconds: number, progressed = false, written?: ApiObject): Promise<void> {
    const { spec, deps } = this;
    const label: ReconcileResultLabel =
      outcome.kind === 'done' ? 'success' : outcome.kind === 'waiting' ? 'requeue' : outcome.kind === 'error' && outcome.timeout ? 'timeout' : outcome.kind;
    deps.metrics?.reconcileDuration.observe({ controller: spec.name, result: label }, seconds);
    this.counts[outcome.kind]++;
    // A deposed or stopping manager leaves the key to whoever leads next.
    if (deps.signal.aborted) return;
    switch (outcome.kind) {
      case 'done':
        log.debug({ seconds }, 'reconciled');
        this.queue.forget(key);
        break;
      case 'waiting':
        log.debug({ seconds, reason: outcome.err.reason, err: outcome.err.message, retryAfterMs: outcome.err.retryAfterMs }, 'waiting');
        this.queue.forget(key);
        this.queue.addAfter(key, outcome.err.retryAfterMs);
        break;
      case 'requeue':
        log.debug({ seconds, requeueAfterMs: outcome.afterMs }, 'reconciled; requeued');
        this.queue.forget(key);
        this.queue.addAfter(key, outcome.afterMs);
        break;
      case 'terminal':
        this.queue.forget(key);
        deps.metrics?.reconcileErrors.inc({ controller: spec.name, type: 'terminal' });
        log.warn({ reason: outcome.err.reason, err: outcome.err.message }, 'reconcile stalled: not retried until the object changes');
        break;
      case 'error': {
        const err = outcome.err;
        deps.metrics?.reconcileErrors.inc({ controller: spec.name, type: outcome.timeout ? 'timeout' : 'error' });
        if (!(err instanceof FencedError)) {
          log.warn({ err: err instanceof Error ? err.message : String(err), requeues: this.queue.numRequeues(key) }, 'reconcile failed; retrying with backoff');
        }
        this.queue.addRateLimited(key);
        break;
      }
    }
    await this.writeConditions(ref, outcome, log, progressed, written);
    this.onSettled?.(key, outcome.kind);
  }

  /**
   * The schema issues of the cached `forKind` object, as one message naming each field, or
   * undefined when it is valid (or not cached, or of a kind without a CRD). Each version is
   * validated once per manager (the cache hands out one object per version).
   */
  private invalidObject(ref: ObjectRef): string | undefined {
    if (!resolveKind(ref.kind)) return undefined;
    const obj = this.deps.cache.get(ref);
    if (!obj) return undefined;
    let verdict = VERDICTS.get(obj);
    if (verdict === undefined) {
      // What was written as input: status is the controllers' own record, written through this very
      // code, and validating it again on each of its versions was most of this check's cost.
      const { status: _own, ...input } = obj;
      const { issues } = validateObject(input);
      verdict = issues.length === 0
        ? ''
        : issues.map((i) => `${i.path.length ? formatPath(i.path) : describeRef(ref)}: ${i.message}`).join('; ');
      VERDICTS.set(obj, verdict);
    }
    return verdict || undefined;
  }

  /**
   * <Admission>Stalled=True/InvalidSpec (rolled up into Stalled) plus a Warning Event, written
   * once per distinct message (every controller of the kind agrees on it).
   */
  private async markInvalid(ref: ObjectRef, issues: string, log: Logger): Promise<void> {
    if (this.deps.signal.aborted) return;
    const message = `${describeRef(ref)} does not match its schema and is not acted on: ${issues}; fix it (vcctl apply validates)`;
    const c = getCondition(conditionsOf(this.deps.cache.get(ref)), stalledConditionType(ADMISSION));
    if (c?.status === 'True' && c.reason === INVALID_SPEC && c.message === `${ADMISSION}: ${message}`) return;
    log.warn({ reason: INVALID_SPEC, err: issues }, 'object does not match its schema: not acted on');
    try {
      const obj = await this.deps.store.tryGet(ref);
      if (!obj) return;
      this.deps.events.record(obj, 'Warning', INVALID_SPEC, message);
      await this.writeOwned(obj, [{ owner: ADMISSION, aggregate: STALLED, status: 'True', reason: INVALID_SPEC, message }]);
    } catch (e) {
      if (!(e instanceof ConflictError)) log.warn({ err: String(e) }, 'could not set the Stalled condition');
    }
  }

  /**
   * The outcome's conditions (controllers/outcome.ts), in one status write over the stored object:
   * this controller's own Stalled/Reconciling set or cleared (rolled up), its declared condition,
   * and a Warning Event for a stall. Nothing is written when nothing would change; after a
   * success, an InvalidSpec stall is withdrawn too (the object is valid again).
   */
  private async writeConditions(ref: ObjectRef, outcome: Outcome, log: Logger, progressed: boolean, written?: ApiObject): Promise<void> {
    const fx = conditionEffects(outcome, this.spec.condition);
    // The newer of the cache's copy and what this reconcile wrote last (writeFinalStatus).
    const inCache = this.deps.cache.get(ref);
    const seen = written && (!inCache || Number(written.metadata.resourceVersion) > Number(inCache.metadata.resourceVersion)) ? written : inCache;
    const cached = conditionsOf(seen);
    const owned = this.successClears(cached, progressed, fx.clear);
    if ((outcome.kind === 'done' || outcome.kind === 'requeue') && getCondition(cached, stalledConditionType(ADMISSION))?.status === 'True') {
      owned.push({ owner: ADMISSION, aggregate: STALLED, status: 'False', reason: 'Reconciled', message: 'reconciled' });
    }
    for (const c of fx.set) {
      const now = getCondition(cached, ownedConditionType(this.spec.name, c.aggregate));
      if (now?.status !== 'True' || now.reason !== c.reason || now.message !== `${this.spec.name}: ${c.message}` || outcome.kind === 'terminal') {
        owned.push({ owner: this.spec.name, ...c, status: 'True' });
      }
    }
    const own = fx.condition;
    const ownNow = own && getCondition(cached, own.type);
    const ownChanges = !!own && (ownNow?.status !== own.status || ownNow.reason !== own.reason || ownNow.message !== (own.message ?? ''));
    if (owned.length === 0 && !ownChanges) return;
    try {
      // Over the cached copy: a stale one costs the refused write, which carries the stored object
      // to compute again over (writeStatusOver); a read first cost a round trip every time.
      const obj = this.deps.cache.get(ref) ?? await this.deps.store.tryGet(ref);
      if (!obj) return;
      if (outcome.kind === 'terminal') this.deps.events.record(obj, 'Warning', outcome.err.reason, outcome.err.message);
      await this.writeOwned(obj, owned, ownChanges ? own : undefined);
    } catch (e) {
      if (!(e instanceof ConflictError || e instanceof NotFoundError)) log.warn({ err: String(e) }, 'could not write the outcome\'s conditions');
    }
  }

  /**
   * What a success clears of this controller's own conditions in `conditions`: those of `clear`
   * that are True, and Reconciling when this reconcile wrote it itself (progressing: it may not
   * be in the cache yet).
   */
  private successClears(conditions: Condition[] | undefined, progressed: boolean, clear: readonly Aggregate[] = [STALLED, RECONCILING]): Owned[] {
    const out: Owned[] = [];
    for (const a of clear) {
      if (getCondition(conditions, ownedConditionType(this.spec.name, a))?.status === 'True' || (a === RECONCILING && progressed)) {
        out.push({ owner: this.spec.name, aggregate: a, status: 'False', reason: a === STALLED ? 'Reconciled' : 'Succeeded', message: 'reconciled' });
      }
    }
    return out;
  }

  /**
   * Writes owned conditions (rolled up) and the declared condition over `obj` (api/status-writer.ts);
   * nothing once `cancelled()` says so (checked on each attempt).
   */
  private async writeOwned(obj: ApiObject, owned: Owned[], own?: ConditionInput, cancelled?: () => boolean): Promise<void> {
    await writeStatusOver(this.deps.store, obj, (current) => {
      if (cancelled?.()) return undefined;
      const status = (current.status && typeof current.status === 'object' ? current.status : {}) as { conditions?: Condition[] };
      const gen = current.metadata.generation ?? 0;
      let conditions = conditionsOf(current);
      for (const { owner, aggregate, ...c } of owned) conditions = setOwned(conditions, aggregate, owner, c, gen);
      if (own) conditions = setCondition(conditions, own, gen);
      return { ...status, conditions };
    });
  }
}

/** A controller's own condition as written: rolled up into its aggregate. */
type Owned = { owner: string; aggregate: Aggregate; status: 'True' | 'False'; reason: string; message: string };

/** The owner of schema stalls: every controller of a kind applies the same admission. */
const ADMISSION = 'admission';
const INVALID_SPEC = 'InvalidSpec';
/** Schema verdict per cached object version: '' valid, else the issues. */
const VERDICTS = new WeakMap<ApiObject, string>();

function conditionsOf(obj: ApiObject | undefined): Condition[] | undefined {
  const s = obj?.status as { conditions?: Condition[] } | undefined;
  return Array.isArray(s?.conditions) ? s.conditions : undefined;
}

/** The namespace an owner of `kind` referenced from `dependent` lives in. */
export function ownerNamespace(ownerKind: string, dependent: ApiObject): string | undefined {
  return isNamespaced(ownerKind, dependent) ? dependent.metadata.namespace : undefined;
}
