// The contract between the controller runtime (controllers/) and the business logic
// (reconcilers/). A reconciler gets a key and the context; it reads current state (cache or store),
// takes the next step toward the desired state, and returns. It must be idempotent and must not
// depend on seeing every event (level-triggered). Outcomes map to queue actions in one place
// (the controller runtime):
//   return undefined            -> done; forget the key's backoff
//   return {requeueAfterMs: n}  -> done for now; process again after n ms
//   throw TerminalError         -> no retry; its own `<Controller>Stalled` condition (rolled up into `Stalled`), Event
//   throw anything else         -> retry with per-key exponential backoff
// A reconcile that throws or panics or exceeds its timeout never takes the worker down.

import type { ApiObject, ObjectMeta } from '../api/types.js';
import type { ListOptions, ObjectRef, Store } from '../api/store/types.js';

export type ReconcileResult = void | undefined | { requeueAfterMs: number };

/** An error the user must act on (bad spec): not retried until the object changes. */
export class TerminalError extends Error {
  constructor(
    message: string,
    public readonly reason: string = 'Stalled',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TerminalError';
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
}

export interface WatchSpec {
  kind: string;
  /** Maps a changed object of `kind` to keys of the controller's primary kind. */
  map(obj: ApiObject): ObjectRef[];
}

export interface ControllerSpec {
  name: string;
  /** The primary kind: every object of it is a key. */
  forKind: string;
  /** Kinds whose controller ownerReference points to a `forKind` object: the owner is requeued. */
  owns?: string[];
  watches?: WatchSpec[];
  /** Concurrent workers; default 2. */
  workers?: number;
  /** Periodic resync of every key from the cache; default 10 minutes. 0 = never. */
  resyncMs?: number;
  /** Per-reconcile timeout; default 5 minutes. */
  timeoutMs?: number;
  reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult>;
}
