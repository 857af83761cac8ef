// FencedStore: the Store every controller writes through. Each write carries the leadership fence
// ({key, createRevision} of the election key), so the store applies it only while that exact key
// still exists: a leader that was paused past its lease and deposed cannot change anything, on
// either backend. Before sending, it also refuses locally when leadership is known to be lost (no
// fence), which saves a round trip but is not what makes it safe.

import type { ApiObject } from '../api/types.js';
import {
  FencedError,
  type BatchOp, type Fence, type LeaseApi, type ListOptions, type ListResult, type ObjectRef,
  type Store, type Watch, type WatchHandlers, type WatchOptions, type WriteOptions,
} from '../api/store/types.js';

export interface FenceSource {
  /** The fence to attach to writes now, or undefined when this process must not write. */
  currentFence(): Fence | undefined;
}

// Write methods are async so that a local refusal is a rejected promise, like a store refusal.
export class FencedStore implements Store {
  /** Writes refused locally because there was no fence. */
  refusedLocally = 0;

  constructor(
    private readonly inner: Store,
    private readonly source: FenceSource,
  ) {}

  get backend(): Store['backend'] {
    return this.inner.backend;
  }
  get leases(): LeaseApi {
    return this.inner.leases;
  }

  private fenced(opts?: WriteOptions): WriteOptions {
    const fence = this.source.currentFence();
    if (!fence) {
      this.refusedLocally++;
      throw new FencedError('this vc-manager is not the leader (any more): the write was not sent');
    }
    return { ...opts, fence };
  }

  async create<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return this.inner.create(obj, this.fenced(opts));
  }
  async update<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return this.inner.update(obj, this.fenced(opts));
  }
  async updateStatus<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return this.inner.updateStatus(obj, this.fenced(opts));
  }
  async delete<T extends ApiObject>(ref: ObjectRef, opts?: WriteOptions & { resourceVersion?: string }): Promise<T> {
    return this.inner.delete(ref, { ...opts, ...this.fenced(opts) });
  }
  async batch(ops: BatchOp[], opts?: WriteOptions): Promise<ApiObject[]> {
    return this.inner.batch(ops, this.fenced(opts));
  }

  get<T extends ApiObject>(ref: ObjectRef): Promise<T> {
    return this.inner.get(ref);
  }
  tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined> {
    return this.inner.tryGet(ref);
  }
  list<T extends ApiObject>(kind: string, opts?: ListOptions): Promise<ListResult<T>> {
    return this.inner.list(kind, opts);
  }
  watch<T extends ApiObject>(kind: string, opts: WatchOptions, handlers: WatchHandlers<T>): Watch {
    return this.inner.watch(kind, opts, handlers);
  }
  revision(): Promise<number> {
    return this.inner.revision();
  }
  /** The wrapper does not own the store it wraps. */
  async close(): Promise<void> {}
}
