// EtcdStore: the Store on etcd v3 through the etcd3 package.
//
// Keys: <prefix>/<plural>/<namespace>/<name> for namespaced objects, <prefix>/<plural>/<name> for
// cluster-scoped ones (plural from api/kinds.ts; an unregistered kind uses its lower-cased name +
// "s"); lease-bound raw keys (leader election, fences) live under <prefix>/_raw/<key>. Values are
// the object's JSON without resourceVersion, which is the key's modRevision.
//
// Writes are single etcd transactions whose compares pin what the plan was computed from: the
// key's createRevision == 0 for creates, its modRevision for everything else, and the fence key's
// createRevision when a fence is given. A failed compare returns the current keys in the same
// round trip (the txn's failure branch), and the plan is recomputed from them: that yields the
// precise error (AlreadyExists, Conflict, NotFound, Fenced) or, for an unconditional update that
// lost a race, a successful retry. So a create is one round trip and an update is two (read + txn).
//
// The etcd3 client's typed errors are cast once, in `call`, into StoreError subclasses.
//
// Limits of etcd apply to batches: at most --max-txn-ops operations (default 128) and
// --max-request-bytes (default 1.5 MiB) per batch; a larger batch fails as a whole with a
// StoreError that says so.

import { readFileSync } from 'node:fs';
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Watcher } from 'etcd3';
import type { ApiObject } from '../types.js';
import { resolveKind } from '../kinds.js';
import {
  CompactedError, ConflictError, FencedError, NotFoundError, StoreError,
  type BatchOp, type Fence, type LeaseApi, type ListOptions, type ListResult, type ObjectRef,
  type Watch, type WatchEvent, type WatchHandlers, type WatchOptions, type WriteOptions,
} from './types.js';
import {
  checkBatch, checkRef, decodeObject, describeRef, encodeObject, planWrite, withVersion, type WritePlan,
} from './object-semantics.js';
import { compileLabelSelector } from './label-selector.js';
import { StoreBase } from './store-base.js';

export interface EtcdStoreOptions {
  /** http(s)://host:port of each member. */
  endpoints: string[];
  /** TLS: file paths. cacert alone verifies the server; cert+key add a client certificate. */
  tls?: { cacert?: string; cert?: string; key?: string };
  auth?: { user: string; password: string };
  /** Key prefix, default /virtualinux. */
  prefix?: string;
  /** Deadline of each unary call, ms. Default 10000. */
  callTimeoutMs?: number;
  /**
   * A watch whose connection is down this long ends with onError, ms. Default 10000. Shorter
   * outages are bridged: the client resumes the watch from the last delivered revision.
   */
  watchBrokenAfterMs?: number;
}

// The raw etcd3 message shapes this file uses (the package's RPC namespace is not exported).
interface KeyValue { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; lease: string }
interface RangeResponse { header: { revision: string }; kvs: KeyValue[] }
interface TxnResponse {
  header: { revision: string };
  succeeded: boolean;
  responses: { response_range?: RangeResponse }[];
}
type Compare = {
  key: Buffer; target: 'Create' | 'Mod'; result: 'Equal';
  create_revision?: string | number; mod_revision?: string | number;
};
type RequestOp =
  | { request_range: { key: Buffer } }
  | { request_put: { key: Buffer; value: Buffer; lease?: string } }
  | { request_delete_range: { key: Buffer } };

/** Most attempts of one write whose compares keep failing without a definite error. */
const MAX_ATTEMPTS = 50;

export class EtcdStore extends StoreBase {
  readonly backend = 'etcd' as const;
  readonly leases: LeaseApi;
  readonly client: Etcd3;
  readonly prefix: string;
  private readonly where: string;
  private readonly watchBrokenAfterMs: number;
  private readonly watches = new Set<{ cancel(): void }>();
  private closed = false;

  private constructor(client: Etcd3, options: EtcdStoreOptions) {
    super();
    this.client = client;
    this.prefix = (options.prefix ?? '/virtualinux').replace(/\/+$/, '');
    this.where = options.endpoints.join(',');
    this.watchBrokenAfterMs = options.watchBrokenAfterMs ?? 10_000;
    this.leases = new EtcdLeases(this);
  }

  /** Connects and checks that etcd answers, so a wrong address fails here with a clear message. */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    const timeout = options.callTimeoutMs ?? 10_000;
    const read = (what: string, path: string | undefined): Buffer | undefined => {
      if (path === undefined) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new StoreError(`cannot read the etcd ${what} file ${path}: ${(err as Error).message}`, { cause: err });
      }
    };
    const rootCertificate = read('CA certificate', options.tls?.cacert);
    const opts: IOptions = {
      hosts: options.endpoints,
      dialTimeout: Math.min(timeout, 5000),
      // Lists of many objects exceed grpc's default 4 MiB message limit.
      grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      ...(options.tls
        ? {
            credentials: {
              rootCertificate: rootCertificate ?? Buffer.alloc(0),
              certChain: read('client certificate', options.tls.cert),
              privateKey: read('client key', options.tls.key),
            },
          }
        : {}),
      ...(options.auth ? { auth: { username: options.auth.user, password: options.auth.password } } : {}),
    };
    const store = new EtcdStore(new Etcd3(opts), options);
    try {
      await store.revision();
    } catch (err) {
      store.client.close();
      throw err;
    }
    return store;
  }

  // ---- keys -----------------------------------------------------------------------------------

  kindPrefix(kind: string, namespace?: string): string {
    const plural = resolveKind(kind)?.plural ?? `${kind.toLowerCase()}s`;
    return `${this.prefix}/${plural}/${namespace ? `${namespace}/` : ''}`;
  }

  private keyOf(ref: ObjectRef): Buffer {
    return Buffer.from(`${this.kindPrefix(ref.kind, ref.namespace)}${ref.name}`);
  }

  rawKey(key: string): Buffer {
    return Buffer.from(`${this.prefix}/_raw/${key}`);
  }

  // ---- error boundary -------------------------------------------------------------------------

  /** Runs one etcd call and casts the client's errors into StoreErrors. */
  async call<R>(what: string, fn: () => Promise<R>): Promise<R> {
    if (this.closed) throw new StoreError(`${what}: the etcd store is closed`);
    try {
      return await fn();
    } catch (err) {
      throw this.castError(what, err);
    }
  }

  castError(what: string, err: unknown): Error {
    if (err instanceof StoreError) return err;
    const e = err as Error;
    const msg = e?.message ?? String(err);
    if (err instanceof EtcdLeaseInvalidError || /lease not found/.test(msg)) {
      return new NotFoundError(`${what}: the lease has expired or was revoked; grant a new one`, { cause: err });
    }
    if (/compacted/.test(msg)) {
      return new CompactedError(`${what}: the revision was compacted; list again and watch from the list revision`, { cause: err });
    }
    if (/too many operations in txn/.test(msg)) {
      return new StoreError(`${what}: the batch has more operations than etcd's --max-txn-ops allows; split it`, { cause: err });
    }
    if (/request is too large/.test(msg)) {
      return new StoreError(`${what}: the batch is larger than etcd's --max-request-bytes allows; split it`, { cause: err });
    }
    return new StoreError(
      `${what}: etcd at ${this.where} failed: ${msg}; check that etcd runs and --store/VCCTL_STORE points at it`,
      { cause: err },
    );
  }

  // ---- reads ----------------------------------------------------------------------------------

  async tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined> {
    const r = checkRef(ref);
    const res = await this.call(`get ${describeRef(r)}`, () => this.client.kv.range({ key: this.keyOf(r) })) as RangeResponse;
    const kv = res.kvs[0];
    return kv ? decodeObject<T>(kv.value.toString(), Number(kv.mod_revision)) : undefined;
  }

  async list<T extends ApiObject>(kind: string, opts: ListOptions = {}): Promise<ListResult<T>> {
    const match = compileLabelSelector(opts.labelSelector);
    const prefix = Buffer.from(this.kindPrefix(kind, opts.namespace));
    const res = await this.call(`list ${kind}`, () =>
      this.client.kv.range({ key: prefix, range_end: prefixEnd(prefix) })) as RangeResponse;
    const items: T[] = [];
    for (const kv of res.kvs) {
      const o = decodeObject<T>(kv.value.toString(), Number(kv.mod_revision));
      if (match(o.metadata.labels)) items.push(o);
    }
    return { items, revision: Number(res.header.revision) };
  }

  async revision(): Promise<number> {
    // A range over one key returns the store revision in its header.
    const res = await this.call('read the revision', () =>
      this.client.kv.range({ key: Buffer.from(`${this.prefix}/`), limit: 1, keys_only: true })) as RangeResponse;
    return Number(res.header.revision);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async batch(ops: BatchOp[], opts: WriteOptions = {}): Promise<ApiObject[]> {
    const refs = checkBatch(ops);
    if (ops.length === 0) return [];
    const keys = refs.map((r) => this.keyOf(r));
    const what = ops.length === 1 ? `${ops[0].op} ${describeRef(refs[0])}` : `batch of ${ops.length}`;
    const fence = opts.fence;
    // What each plan was computed from: undefined = absent (creates assume absence unread).
    let current: (KeyValue | undefined)[];
    const toRead = keys.filter((_k, i) => ops[i].op !== 'create');
    if (toRead.length === 0) {
      current = keys.map(() => undefined);
    } else {
      const res = await this.call(what, () => this.client.kv.txn({
        success: toRead.map((key) => ({ request_range: { key } })),
      })) as TxnResponse;
      const read = res.responses.map((r) => r.response_range?.kvs[0]);
      let j = 0;
      current = ops.map((op) => (op.op === 'create' ? undefined : read[j++]));
    }
    let createsRead = !ops.some((op) => op.op === 'create');
    for (let attempt = 1; ; attempt++) {
      const now = Date.now();
      let plans: WritePlan[];
      try {
        plans = ops.map((op, i) => {
          const kv = current[i];
          return planWrite(op, kv ? decodeObject(kv.value.toString(), Number(kv.mod_revision)) : undefined, now);
        });
      } catch (err) {
        // A later operation failed while the creates before it were only assumed to find nothing:
        // read them too, so the error is that of the first failing operation, as on every backend.
        if (createsRead) throw err;
        createsRead = true;
        const createKeys = keys.filter((_k, i) => ops[i].op === 'create');
        const res = await this.call(what, () => this.client.kv.txn({
          success: createKeys.map((key) => ({ request_range: { key } })),
        })) as TxnResponse;
        const read = res.responses.map((r) => r.response_range?.kvs[0]);
        let j = 0;
        current = ops.map((op, i) => (op.op === 'create' ? read[j++] : current[i]));
        attempt--;
        continue;
      }
      const compare: Compare[] = keys.map((key, i) => {
        const kv = current[i];
        return kv
          ? { key, target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }
          : { key, target: 'Create', result: 'Equal', create_revision: 0 };
      });
      if (fence) compare.push({ key: this.rawKey(fence.key), target: 'Create', result: 'Equal', create_revision: fence.createRevision });
      const success: RequestOp[] = [];
      plans.forEach((p, i) => {
        if (p.action === 'put') success.push({ request_put: { key: keys[i], value: Buffer.from(encodeObject(p.object)) } });
        if (p.action === 'delete') success.push({ request_delete_range: { key: keys[i] } });
      });
      if (success.length === 0 && !fence) return plans.map((p) => p.object);
      const failure: RequestOp[] = keys.map((key) => ({ request_range: { key } }));
      if (fence) failure.push({ request_range: { key: this.rawKey(fence.key) } });
      const res = await this.call(what, () => this.client.kv.txn({ compare, success, failure })) as TxnResponse;
      if (res.succeeded) {
        const rev = Number(res.header.revision);
        return plans.map((p) => (p.action === 'none' ? p.object : withVersion(p.object, rev)));
      }
      const got = res.responses.map((r) => r.response_range?.kvs[0]);
      if (fence) checkFence(fence, got[keys.length]);
      current = got.slice(0, keys.length);
      if (attempt >= MAX_ATTEMPTS) {
        throw new ConflictError(`${what}: the objects kept changing during ${MAX_ATTEMPTS} attempts; retry later`);
      }
    }
  }

  // ---- watch ----------------------------------------------------------------------------------

  watch<T extends ApiObject>(kind: string, opts: WatchOptions, handlers: WatchHandlers<T>): Watch {
    const prefix = this.kindPrefix(kind, opts.namespace);
    let closed = false;
    let delivered = 0;
    let watcher: Watcher | undefined;
    let brokenTimer: NodeJS.Timeout | undefined;
    const entry = {
      cancel: () => {
        clearTimeout(brokenTimer);
        void watcher?.cancel().catch(() => undefined);
      },
    };
    const fail = (err: Error): void => {
      if (closed) return;
      closed = true;
      this.watches.delete(entry);
      entry.cancel();
      handlers.onError(err);
    };
    const what = `watch ${kind}${opts.namespace ? ` in ${opts.namespace}` : ''} from revision ${opts.fromRevision}`;
    const builder = this.client.watch().prefix(prefix).withPreviousKV();
    if (opts.fromRevision > 0) builder.startRevision(String(opts.fromRevision));
    this.watches.add(entry);
    builder.create().then((w) => {
      watcher = w;
      if (closed) { entry.cancel(); return; }
      w.on('disconnected', (err) => {
        brokenTimer ??= setTimeout(() => fail(new StoreError(
          `${what}: the connection to etcd at ${this.where} has been down for ${this.watchBrokenAfterMs} ms ` +
            `(${err.message}); list again when etcd is back`, { cause: err })), this.watchBrokenAfterMs);
      });
      w.on('connected', () => {
        clearTimeout(brokenTimer);
        brokenTimer = undefined;
      });
      w.on('data', (res) => {
        if (closed) return;
        if (res.compact_revision && res.compact_revision !== '0') {
          fail(new CompactedError(`${what}: etcd compacted its history up to revision ${res.compact_revision}; list again and watch from the list revision`));
          return;
        }
        for (const ev of res.events) {
          if (closed) return;
          try {
            const event = this.toEvent(kind, ev as unknown as { type: string; kv: KeyValue; prev_kv?: KeyValue }) as WatchEvent<T>;
            delivered = event.revision;
            handlers.onEvent(event);
          } catch (err) {
            fail(new StoreError(`${what}: the event handler threw; the watch is closed`, { cause: err }));
          }
        }
      });
      // etcd cancels a watch from a compacted revision with an empty reason, and the client does
      // not pass on the compact revision: ask etcd whether the revision is still readable.
      w.on('error', (err) => {
        const from = delivered > 0 ? delivered + 1 : opts.fromRevision;
        void this.isCompacted(from).then(
          (compacted) => fail(compacted
            ? new CompactedError(`${what}: etcd compacted its history past revision ${from}; list again and watch from the list revision`, { cause: err })
            : this.castError(what, err)),
          () => fail(this.castError(what, err)),
        );
      });
    }, (err: unknown) => fail(this.castError(what, err)));
    return {
      close: () => {
        if (closed) return;
        closed = true;
        this.watches.delete(entry);
        entry.cancel();
      },
    };
  }

  /** Whether `revision` is older than etcd's compacted revision. */
  private async isCompacted(revision: number): Promise<boolean> {
    if (!(revision > 0)) return false;
    try {
      await this.client.kv.range({ key: Buffer.from(`${this.prefix}/`), limit: 1, keys_only: true, revision });
      return false;
    } catch (err) {
      return /compacted/.test((err as Error).message);
    }
  }

  private toEvent(kind: string, ev: { type: string; kv: KeyValue; prev_kv?: KeyValue }): WatchEvent {
    const revision = Number(ev.kv.mod_revision);
    if (ev.type === 'Put') {
      return {
        type: ev.kv.create_revision === ev.kv.mod_revision ? 'ADDED' : 'MODIFIED',
        object: decodeObject(ev.kv.value.toString(), revision),
        revision,
      };
    }
    // A delete event carries the previous value unless etcd compacted it away; then the key is
    // all that is known.
    const object = ev.prev_kv
      ? decodeObject(ev.prev_kv.value.toString(), revision)
      : this.objectFromKey(kind, ev.kv.key.toString(), revision);
    return { type: 'DELETED', object, revision };
  }

  private objectFromKey(kind: string, key: string, revision: number): ApiObject {
    const rest = key.slice(this.kindPrefix(kind).length).split('/');
    const metadata = rest.length === 2
      ? { namespace: rest[0], name: rest[1], resourceVersion: String(revision) }
      : { name: rest[0], resourceVersion: String(revision) };
    return { apiVersion: '', kind, metadata };
  }

  // ---- compaction and lifecycle ----------------------------------------------------------------

  /** Compacts etcd's history before `revision` (physically, before returning). */
  async compact(revision: number): Promise<void> {
    await this.call(`compact to revision ${revision}`, () => this.client.kv.compact({ revision, physical: true }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.cancel();
    this.watches.clear();
    this.client.close();
  }
}

function checkFence(fence: Fence, kv: KeyValue | undefined): void {
  if (!kv || Number(kv.create_revision) !== fence.createRevision) {
    throw new FencedError(
      `write fenced: ${fence.key} ${kv ? `was re-created at revision ${kv.create_revision}` : 'no longer exists'} ` +
        `(the fence expects revision ${fence.createRevision}); this process is no longer the leader`,
    );
  }
}

/** The end of the key range that holds every key starting with prefix. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

class EtcdLeases implements LeaseApi {
  constructor(private readonly store: EtcdStore) {}

  private get client(): Etcd3 {
    return this.store.client;
  }

  async grant(ttlSeconds: number): Promise<string> {
    if (!(ttlSeconds > 0)) throw new StoreError(`lease TTL must be positive, got ${ttlSeconds}`);
    const res = await this.store.call('grant a lease', () => this.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlSeconds), ID: 0 }));
    return String(res.ID);
  }

  async keepAlive(leaseId: string): Promise<void> {
    const what = `keep lease ${leaseId} alive`;
    const res = await this.store.call(what, async () => {
      const stream = await this.client.leaseClient.leaseKeepAlive();
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.write({ ID: leaseId });
        });
      } finally {
        stream.end();
      }
    });
    if (Number(res.TTL) <= 0) throw new NotFoundError(`${what}: the lease has expired or was revoked; grant a new one`);
  }

  async revoke(leaseId: string): Promise<void> {
    try {
      await this.store.call(`revoke lease ${leaseId}`, () => this.client.leaseClient.leaseRevoke({ ID: leaseId }));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async putIfAbsent(key: string, value: string, leaseId: string): Promise<number | undefined> {
    const k = this.store.rawKey(key);
    const res = await this.store.call(`claim ${key}`, () => this.client.kv.txn({
      compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: k, value: Buffer.from(value), lease: leaseId } }],
    })) as TxnResponse;
    return res.succeeded ? Number(res.header.revision) : undefined;
  }

  async getRaw(key: string): Promise<{ value: string; createRevision: number } | undefined> {
    const res = await this.store.call(`read ${key}`, () => this.client.kv.range({ key: this.store.rawKey(key) })) as RangeResponse;
    const kv = res.kvs[0];
    return kv ? { value: kv.value.toString(), createRevision: Number(kv.create_revision) } : undefined;
  }

  watchRaw(key: string, onChange: () => void): Watch {
    let done = false;
    let watcher: Watcher | undefined;
    const fire = (): void => {
      if (done) return;
      done = true;
      void watcher?.cancel().catch(() => undefined);
      onChange();
    };
    const k = this.store.rawKey(key);
    // Read first, then watch from the revision after the read, so no change can slip between.
    void this.store.call(`watch ${key}`, () => this.client.kv.range({ key: k }))
      .then(async (res) => {
        if (done) return;
        const w = await this.client.watch().key(k).startRevision(String(Number((res as RangeResponse).header.revision) + 1)).create();
        watcher = w;
        if (done) { void w.cancel().catch(() => undefined); return; }
        w.on('data', (r) => { if (r.events.length > 0) fire(); });
        // A broken watch cannot tell whether the key changed: assume it did (the caller re-checks).
        w.on('error', () => fire());
      })
      .catch(() => fire());
    return {
      close: () => {
        done = true;
        void watcher?.cancel().catch(() => undefined);
      },
    };
  }
}
