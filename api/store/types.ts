// The Store contract. Two backends implement it (EtcdStore on etcd3, SqliteStore embedded); one
// conformance suite (test/conformance) runs unchanged on both. Nothing outside api/store knows
// which backend it talks to.
//
// Semantics every backend guarantees:
// - Every successful write advances one global revision; an object's metadata.resourceVersion is
//   the revision of its last write, as a decimal string. Batches advance it once.
// - create fails with AlreadyExistsError when the object exists (also while it is terminating).
//   create assigns uid, creationTimestamp, generation=1, resourceVersion; it keeps a given status.
// - update checks metadata.resourceVersion when given (stale => ConflictError; omitted =>
//   unconditional). It replaces metadata (labels, annotations, finalizers, ownerReferences) and
//   spec, keeps the stored status, and bumps generation only when spec changed. uid,
//   creationTimestamp, deletionTimestamp are kept from the stored object. An update that removes
//   the last finalizer of an object with deletionTimestamp deletes it.
// - updateStatus replaces status only (same resourceVersion check), never bumps generation.
// - delete: with finalizers it only sets deletionTimestamp (once) and returns the object; without,
//   it removes the object and returns the last state. NotFoundError when absent.
// - watch delivers every change after `fromRevision` in revision order, for the selected kind
//   (and namespace). If that revision is compacted it fails with CompactedError: list again.
// - batch applies all operations atomically or none (ConflictError / AlreadyExistsError /
//   NotFoundError / FencedError tell which one failed).
// - A Fence on any write makes it conditional on the fence key still holding the given
//   createRevision (leadership); otherwise the write fails with FencedError and changes nothing.

import type { ApiObject } from '../types.js';
import { NamedError } from '../errors.js';

/**
 * The store's errors. Recognized by identity and also by their class names along the prototype
 * chain (below StoreError): a store module loaded twice makes a second copy of these classes, and
 * a conflict from the other copy was not `instanceof ConflictError`. That happens wherever code
 * loaded as CommonJS (mocha loads test files so, through tsx) reaches a backend that openStore
 * imports lazily through the ESM loader: updateWithRetry then gave up at the first conflict
 * (operations.e2e's resize write, Dec 7). `keepNames` keeps the names in the vcctl bundle.
 */
export class StoreError extends NamedError {
  static override [Symbol.hasInstance](x: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, x)) return true;
    if (!(x instanceof Error)) return false;
    let named = false;
    for (let p = Object.getPrototypeOf(x) as object | null; p && p !== Error.prototype; p = Object.getPrototypeOf(p) as object | null) {
      const name = (p as { constructor?: { name?: string } }).constructor?.name;
      if (name === this.name) named = true;
      if (name === 'StoreError') return named;
    }
    return false;
  }
}
export class NotFoundError extends StoreError {}
export class AlreadyExistsError extends StoreError {}
export class ConflictError extends StoreError {
  /**
   * The object as stored when the write was refused (its resourceVersion set), when the store read
   * it to decide: a writer can compute again over it without reading it once more.
   */
  current?: ApiObject;

  /** `current` when it is the object `ref` names (a single object's write), else undefined: read it then. */
  currentOf(ref: ObjectRef): ApiObject | undefined {
    const c = this.current;
    return c && c.kind === ref.kind && c.metadata.name === ref.name && c.metadata.namespace === ref.namespace ? c : undefined;
  }
}
/** The requested watch revision has been compacted: list again and watch from the list revision. */
export class CompactedError extends StoreError {}
/** The write carried a fence that no longer holds: the writer is not the leader any more. */
export class FencedError extends StoreError {}

export interface ObjectRef {
  kind: string;
  name: string;
  /** Omitted for cluster-scoped kinds. */
  namespace?: string;
}

/** Leadership fence: the raw key must exist with exactly this createRevision. */
export interface Fence {
  key: string;
  createRevision: number;
}

export interface WriteOptions {
  fence?: Fence;
  /**
   * The objects the writes were computed from, exactly as the store gave them (a get, a list, a
   * watch: the cache) at their resourceVersion. A backend may then plan each write of one of them
   * (an update, updateStatus or delete of the same kind, namespace and name) over it instead of
   * reading it first: the write is applied only if the object is still at that resourceVersion,
   * and otherwise it is planned again over the stored one (a conditional write: ConflictError).
   * A read per write was a third of etcd's requests in hack/bench-scale.
   */
  read?: readonly ApiObject[];
}

export interface ListOptions {
  /** Only this namespace (namespaced kinds). Omitted: all namespaces. */
  namespace?: string;
  /** Kubernetes label selector text: `a=b,c!=d,e in (x,y),!f,g`. */
  labelSelector?: string;
}

export interface ListResult<T extends ApiObject = ApiObject> {
  items: T[];
  /** The store revision the list was read at: watch from revision + 1. */
  revision: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface WatchEvent<T extends ApiObject = ApiObject> {
  type: WatchEventType;
  /** For DELETED: the last state of the object, with resourceVersion = deletion revision. */
  object: T;
  revision: number;
}

export interface WatchOptions {
  namespace?: string;
  /** First revision to deliver (inclusive). Usually the list revision + 1. */
  fromRevision: number;
}

export interface Watch {
  /** Stops the watch; the iterator ends. Idempotent. */
  close(): void;
}

export interface WatchHandlers<T extends ApiObject = ApiObject> {
  onEvent(ev: WatchEvent<T>): void;
  /** The watch ended with an error (CompactedError or a broken connection). Not called after close(). */
  onError(err: Error): void;
}

export type BatchOp =
  | { op: 'create'; object: ApiObject }
  | { op: 'update'; object: ApiObject }
  | { op: 'updateStatus'; object: ApiObject }
  | { op: 'delete'; ref: ObjectRef; resourceVersion?: string };

/** Primitives for leader election: leases with a TTL and keys bound to them. */
export interface LeaseApi {
  /** Grants a lease of ttlSeconds. Returns its id. */
  grant(ttlSeconds: number): Promise<string>;
  /**
   * Refreshes the lease; throws NotFoundError if it has already expired. Asks every member at once
   * where there are several (the first answer counts), so one member that hangs or is cut off does
   * not hold the renewal up; gives up at `deadline` (epoch ms; default the store's call timeout).
   */
  keepAlive(leaseId: string, deadline?: number): Promise<void>;
  /** Revokes the lease and deletes its keys. Idempotent. */
  revoke(leaseId: string): Promise<void>;
  /** Creates `key` = value bound to the lease if the key is absent. Returns the createRevision on
   * success, or undefined if the key exists (held by someone else, or by us). */
  putIfAbsent(key: string, value: string, leaseId: string): Promise<number | undefined>;
  /** Reads a raw key: value and createRevision, or undefined. */
  getRaw(key: string): Promise<{ value: string; createRevision: number } | undefined>;
  /** Calls back (once) when `key` is deleted or changes. */
  watchRaw(key: string, onChange: () => void): Watch;
}

export interface Store {
  readonly backend: 'etcd' | 'sqlite';
  create<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T>;
  get<T extends ApiObject>(ref: ObjectRef): Promise<T>;
  /** get, but undefined instead of NotFoundError. */
  tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends ApiObject>(kind: string, opts?: ListOptions): Promise<ListResult<T>>;
  update<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T>;
  updateStatus<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T>;
  delete<T extends ApiObject>(ref: ObjectRef, opts?: WriteOptions & { resourceVersion?: string }): Promise<T>;
  /** Atomic multi-object write; returns the resulting objects (the deleted state for deletes). */
  batch(ops: BatchOp[], opts?: WriteOptions): Promise<ApiObject[]>;
  watch<T extends ApiObject>(kind: string, opts: WatchOptions, handlers: WatchHandlers<T>): Watch;
  /** The current store revision. */
  revision(): Promise<number>;
  readonly leases: LeaseApi;
  close(): Promise<void>;
  /**
   * Called for each stored value that is not an object (bytes written around vcctl) which a list
   * or a watch skipped; default: one line on stderr per key and revision. get/tryGet of such a key
   * throw an UndecodableError instead.
   */
  onUndecodable?: (err: Error) => void;
}
