// StoreBase: the part of the Store contract that is the same for every backend. Single-object
// writes are one-operation batches, and get is tryGet plus NotFoundError, so each backend
// implements the write path once (batch) and the semantics stay in object-semantics.ts.

import type { ApiObject } from '../types.js';
import {
  NotFoundError,
  type BatchOp, type LeaseApi, type ListOptions, type ListResult, type ObjectRef, type Store, type Watch,
  type WatchHandlers, type WatchOptions, type WriteOptions,
} from './types.js';
import { describeRef } from './object-semantics.js';

export abstract class StoreBase implements Store {
  abstract readonly backend: 'etcd' | 'sqlite';
  abstract readonly leases: LeaseApi;
  abstract tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined>;
  abstract list<T extends ApiObject>(kind: string, opts?: ListOptions): Promise<ListResult<T>>;
  abstract batch(ops: BatchOp[], opts?: WriteOptions): Promise<ApiObject[]>;
  abstract watch<T extends ApiObject>(kind: string, opts: WatchOptions, handlers: WatchHandlers<T>): Watch;
  abstract revision(): Promise<number>;
  abstract close(): Promise<void>;
  onUndecodable?: (err: Error) => void;
  private readonly reported = new Set<string>();

  /** A list or watch skipped a value that is not an object: say so (once per key and revision). */
  protected reportUndecodable(err: Error): void {
    if (this.onUndecodable) {
      this.onUndecodable(err);
      return;
    }
    if (this.reported.has(err.message)) return;
    this.reported.add(err.message);
    process.stderr.write(`warning: skipped ${err.message}\n`);
  }

  async get<T extends ApiObject>(ref: ObjectRef): Promise<T> {
    const o = await this.tryGet<T>(ref);
    if (!o) throw new NotFoundError(`${describeRef(ref)} not found`);
    return o;
  }
  async create<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return (await this.batch([{ op: 'create', object: obj }], opts))[0] as T;
  }
  async update<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return (await this.batch([{ op: 'update', object: obj }], opts))[0] as T;
  }
  async updateStatus<T extends ApiObject>(obj: T, opts?: WriteOptions): Promise<T> {
    return (await this.batch([{ op: 'updateStatus', object: obj }], opts))[0] as T;
  }
  async delete<T extends ApiObject>(ref: ObjectRef, opts: WriteOptions & { resourceVersion?: string } = {}): Promise<T> {
    return (await this.batch([{ op: 'delete', ref, resourceVersion: opts.resourceVersion }], opts))[0] as T;
  }
}
