// SharedCache: one Informer per kind, shared by every controller of a manager, read through the
// CacheReader of controllers/types.ts. A kind is cached only if some controller declared it
// (forKind, owns, watches) or the manager asked for it: reading another kind is a programming
// error and says which declaration is missing.

import type { ApiObject } from '../api/types.js';
import type { ListOptions, ObjectRef, Store } from '../api/store/types.js';
import { Informer, type InformerOptions } from './informer.js';
import type { CacheReader } from './types.js';

export class SharedCache implements CacheReader {
  private readonly informers = new Map<string, Informer>();
  private started = false;

  constructor(
    private readonly store: Store,
    private readonly opts: InformerOptions = {},
  ) {}

  /** The informer of a kind, created (and started, if the cache runs) on first use. */
  informer<T extends ApiObject = ApiObject>(kind: string): Informer<T> {
    let inf = this.informers.get(kind);
    if (!inf) {
      inf = new Informer(this.store, kind, this.opts);
      this.informers.set(kind, inf);
      if (this.started) inf.start();
    }
    return inf as unknown as Informer<T>;
  }

  kinds(): string[] {
    return [...this.informers.keys()];
  }

  start(): void {
    this.started = true;
    for (const inf of this.informers.values()) inf.start();
  }
  stop(): void {
    this.started = false;
    for (const inf of this.informers.values()) inf.stop();
  }
  hasSynced(): boolean {
    for (const inf of this.informers.values()) if (!inf.hasSynced()) return false;
    return true;
  }
  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.waitForSync(signal)));
  }

  private known(kind: string): Informer {
    const inf = this.informers.get(kind);
    if (!inf) {
      throw new Error(
        `the cache holds no ${kind} objects: declare ${kind} in the controller's forKind, owns or watches`,
      );
    }
    return inf;
  }

  get<T extends ApiObject>(ref: ObjectRef): T | undefined {
    return this.known(ref.kind).get(ref) as T | undefined;
  }
  list<T extends ApiObject>(kind: string, opts?: ListOptions): T[] {
    return this.known(kind).list(opts) as T[];
  }
  /** Cached objects of `kind` with an ownerReference to `uid`. */
  listByOwner<T extends ApiObject>(kind: string, uid: string): T[] {
    return this.known(kind).listByOwner(uid) as T[];
  }
}
