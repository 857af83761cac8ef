// The contract between the controller runtime (controllers/) and the business logic
// (reconcilers/). A reconciler gets a key and the context; it reads current state (cache or store),
// takes the next step toward the desired state, and returns. It must be idempotent and must not
// depend on seeing every event (level-triggered). Outcomes map to queue actions in one place
// (the controller runtime), through one error taxonomy (as Flux's runtime has it):
//   return undefined            -> done; forget the key's backoff; this controller's own
//                                  `<Controller>Stalled` / `<Controller>Reconciling` cleared
//   return {requeueAfterMs: n}  -> done for now (the same conditions cleared); again after n ms
//   throw StallingError         -> the user must act: no retry until the object changes;
//                                  `<Controller>Stalled` True (rolled up into `Stalled`), a Warning Event
//   throw WaitingError          -> a dependency is not ready: again after its retryAfterMs, no
//                                  backoff growth; `<Controller>Reconciling` True (rolled up into `Reconciling`)
//   ctx.progressing(...)        -> `<Controller>Reconciling` True while the reconcile works (past 1 s)
//   throw GenericError          -> failed, retried with per-key exponential backoff;
//                                  `<Controller>Reconciling` True with its reason
//   throw anything else         -> the same retry, no condition (a transient failure of I/O)
// With all three, the controller's own condition (spec.condition, e.g. StorageReady) is set False
// with the error's reason and message. The mapping lives in one place: controllers/outcome.ts.
// A reconcile that throws or panics or exceeds its timeout never takes the worker down.

import type { ApiObject, ObjectMeta } from '../api/types.js';
import type { ListOptions, ObjectRef, Store } from '../api/store/types.js';
import { NamedError } from '../api/errors.js';

export type ReconcileResult = void | undefined | { requeueAfterMs: number };

/** The user must act (a bad spec, a missing template): not retried until the object changes. */
export class StallingError extends NamedError {
  constructor(message: string, public readonly reason: string = 'Stalled', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A dependency is not ready yet: tried again after retryAfterMs, without backoff growth. */
export class WaitingError extends NamedError {
  constructor(message: string, public readonly reason: string, public readonly retryAfterMs = 5_000, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The work failed in a way worth telling the user (reason): retried with backoff. */
export class GenericError extends NamedError {
  constructor(message: string, public readonly reason: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface Logger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Read access to the informer caches (no I/O; may lag the store slightly). */
export interface CacheReader {
  get<T extends ApiObject>(ref: ObjectRef): T | undefined;
  list<T extends ApiObject>(kind: string, opts?: ListOptions): T[];
}

export interface EventRecorder {
  /** De-duplicated by (object, type, reason, message): count and lastTimestamp grow. */
  record(
    obj: { kind: string; metadata: Pick<ObjectMeta, 'name' | 'namespace' | 'uid'> },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void;
}

export interface ReconcileContext {
  /** Every write through this store is fenced by the manager's leadership. */
  store: Store;
  cache: CacheReader;
  events: EventRecorder;
  log: Logger;
  /** Aborted when leadership is lost, on shutdown, or at the reconcile timeout. */
  signal: AbortSignal;
  /**
   * Says that work is in flight on the object (volumes being made, a VM being started): this
   * controller's own `<Controller>Reconciling` goes True (rolled up into `Reconciling`) until the
   * reconcile returns, which clears it. Called before long work; written once per reconcile, and
   * only when the reconcile still runs a second later (PROGRESSING_DELAY_MS in controller.ts):
   * work that ends sooner writes nothing.
   */
  progressing?(reason: string, message: string): Promise<void>;
  /**
   * The reconcile's last status write of its own object, as writeStatusOver (api/status-writer.ts)
   * writes it, with this controller's own Reconciling and Stalled cleared in the same write as its
   * success would clear them: the outcome then finds nothing left to write (one status write
   * fewer for each object that waited or progressed: hack/bench-scale). Call it only as the last
   * write of a reconcile about to succeed; from the call on, a Reconciling True of progressing()
   * not yet written is not written. Use finalStatusWrite (controllers/final-status.ts), which falls
   * back to writeStatusOver where a context lacks it.
   */
  writeFinalStatus?<T extends ApiObject>(obj: T, next: (current: T) => T['status'] | undefined): Promise<T | undefined>;
}

export interface WatchSpec {
  kind: string;
  /** Maps a changed object of `kind` to keys of the controller's primary kind. */
  map(obj: ApiObject): ObjectRef[];
  /**
   * What `map` and the controller's plans read of a `kind` object, as a JSON-able value (a spec as
   * [metadata.uid, metadata.generation]): an update whose old and new versions have equal
   * signatures maps nothing; otherwise both versions are mapped (the key a VM leaves and the one it
   * joins). Adds and deletions always map. Absent: every update maps. Unlike mapOnChange
   * (change-filter.ts), it compares the two versions of one event, so a mapping that follows a
   * signature field (the node a VM is bound to) still reaches the old key.
   */
  signature?(obj: ApiObject): unknown;
}

export interface ControllerSpec {
  name: string;
  /** The primary kind: every object of it is a key. */
  forKind: string;
  /** Kinds whose controller ownerReference points to a `forKind` object: the owner is requeued. */
  owns?: string[];
  /**
   * What the controller reads of its owned objects (as WatchSpec.signature): an update of an owned
   * object that keeps it and its ownerReferences does not requeue the owner. Absent: every update
   * does (most of a VM's updates are status writes its VC reads nothing of: hack/bench-scale).
   */
  ownedSignature?(obj: ApiObject): unknown;
  watches?: WatchSpec[];
  /**
   * What the controller reads of its forKind object, as a JSON-able value: an update whose
   * signature equals the previous version's is not queued (adds, deletions and resyncs always
   * are). Absent: every update is queued. Most updates of a busy object are other controllers'
   * status writes; each re-ran every controller of the kind (hack/bench-scale). Leave out the
   * controller's own outcome conditions (controllers/outcome.ts writes those after each reconcile).
   */
  forSignature?(obj: ApiObject): unknown;
  /**
   * Sources of keys besides the informers (as controller-runtime's source.Channel), for state
   * outside the store (the domains on a node, say): each is started with the controller and
   * given `enqueue` (a ref of another kind is ignored); it returns its stop function, called when
   * the controller stops. It must not throw out of its timers.
   */
  sources?: ((enqueue: (ref: ObjectRef) => void) => () => void)[];
  /** Concurrent workers; default 2. */
  workers?: number;
  /** Periodic resync of every key from the cache; default 10 minutes. 0 = never. */
  resyncMs?: number;
  /** Per-reconcile timeout; default 5 minutes. */
  timeoutMs?: number;
  /** The condition this controller reports on its object (e.g. StorageReady): a Stalling,
   * Waiting or Generic error sets it False with the error's reason (controllers/outcome.ts). */
  condition?: string;
  reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult>;
}
