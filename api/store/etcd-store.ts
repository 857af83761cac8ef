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
// Failover and deadlines: every store operation (a get, a list, a whole batch, a lease call) has
// ONE deadline, callTimeoutMs (default 10 s), honoured across all its attempts. Unary calls go to
// one member at a time through a client per endpoint, sticking to the last member that answered;
// an attempt that fails for a reason another member or a later try may not share (unreachable, no
// answer within its share of the deadline, "no leader", "leader changed", "request timed out")
// moves to the next member, and after a round over every member waits with exponential backoff
// (100 ms doubling to 2 s, jittered). When the deadline passes the error is a StoreUnavailable
// StoreError: `store unavailable at etcd://H:P,...: no answer within 10 s (H:P: why; ...)`. Every
// request carries etcd's require-leader flag, so a member cut off from the majority answers "no
// leader" at once instead of holding the request until the deadline, and a watch served by such a
// member is cancelled by etcd and resumed by the client on another member.
// A watch resumes after the last event it delivered, never later: the etcd3 client moves its
// resume point to the header revision of every response (the created response included), which
// for a watch catching up on history is ahead of the events still on their way, so a break during
// the catch-up skipped them for good (seen: an all-members restart right after 15 creates left
// the manager's cache without those 15 VirtualClusters). resumeAfterDelivered() pins it back.
// A write whose attempt failed that way may have been applied all the same: when its retry's
// compares fail, the keys are read back, and a state that is exactly what the write would have
// made (every put's bytes in place, every deleted key gone) is taken as its success; so a retried
// write is neither lost nor applied twice.
//
// Limits of etcd apply to batches: at most --max-txn-ops operations (default 128) and
// --max-request-bytes (default 1.5 MiB) per batch; a larger batch fails as a whole with a
// StoreError that says so.

import { readFileSync } from 'node:fs';
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Watcher } from 'etcd3';
import type { Metadata } from '@grpc/grpc-js';
import type { ApiObject } from '../types.js';
import { resolveKind } from '../kinds.js';
import {
  CompactedError, ConflictError, FencedError, NotFoundError, StoreError,
  type BatchOp, type Fence, type LeaseApi, type ListOptions, type ListResult, type ObjectRef,
  type Watch, type WatchEvent, type WatchHandlers, type WatchOptions, type WriteOptions,
} from './types.js';
import {
  checkBatch, checkRef, decodeObject, describeRef, encodeObject, planWrite, UndecodableError, withVersion, type WritePlan,
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
  /** Deadline of each store operation, across its retries and members, ms. Default 10000. */
  callTimeoutMs?: number;
  /** Longest single attempt before the next member is tried, ms. Default a third of callTimeoutMs, 1-5 s. */
  attemptTimeoutMs?: number;
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

// grpc-js names the server by its address for TLS (SNI), and Node warns (DEP0123) when that is an
// IP address, on stderr of every vcctl run against members given by address. The certificate is
// still checked against the address; only this one warning is dropped.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
  if (code === 'DEP0123') return;
  (emitWarning as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

/** Most attempts of one write whose compares keep failing without a definite error. */
const MAX_ATTEMPTS = 50;

export class EtcdStore extends StoreBase {
  readonly backend = 'etcd' as const;
  readonly leases: LeaseApi;
  /** A client of every member: watches (the client resumes them on any member) and tools. */
  readonly client: Etcd3;
  readonly prefix: string;
  private readonly where: string;
  /** etcd://H:P,H:P: how messages name this store. */
  private readonly url: string;
  /** One client per endpoint, in the order given; unary calls go through these. */
  private readonly members: { host: string; client: Etcd3 }[];
  /** Index of the member that answered last. */
  private current = 0;
  private readonly timeoutMs: number;
  private readonly attemptMs: number;
  private readonly watchBrokenAfterMs: number;
  private readonly watches = new Set<{ cancel(): void }>();
  private closed = false;

  private constructor(options: EtcdStoreOptions, makeClient: (hosts: string[]) => Etcd3) {
    super();
    this.client = makeClient(options.endpoints);
    this.members = options.endpoints.map((e) => ({ host: e.replace(/^https?:\/\//, ''), client: makeClient([e]) }));
    this.prefix = (options.prefix ?? '/virtualinux').replace(/\/+$/, '');
    this.where = options.endpoints.join(',');
    this.url = `etcd://${this.members.map((m) => m.host).join(',')}`;
    this.timeoutMs = options.callTimeoutMs ?? 10_000;
    this.attemptMs = options.attemptTimeoutMs ?? Math.min(5000, Math.max(1000, Math.round(this.timeoutMs / 3)));
    this.watchBrokenAfterMs = options.watchBrokenAfterMs ?? 10_000;
    this.leases = new EtcdLeases(this);
  }

  /** Connects and checks that etcd answers, so a wrong address fails here with a clear message. */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    const read = (what: string, path: string | undefined): Buffer | undefined => {
      if (path === undefined) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new StoreError(`cannot read the etcd ${what} file ${path}: ${(err as Error).message}`, { cause: err });
      }
    };
    const rootCertificate = read('CA certificate', options.tls?.cacert);
    const certChain = read('client certificate', options.tls?.cert);
    const privateKey = read('client key', options.tls?.key);
    const makeClient = (hosts: string[]): Etcd3 => {
      const opts: IOptions = {
        hosts,
        dialTimeout: 2000,
        // Lists of many objects exceed grpc's default 4 MiB message limit.
        grpcOptions: {
          'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024,
          // A member cut off by the network sends nothing, not even a reset: pings while a watch
          // is open find the dead connection (etcd refuses pings closer than 5 s), and the client
          // resumes the watch on another member.
          'grpc.keepalive_time_ms': 6000, 'grpc.keepalive_timeout_ms': 3000,
        },
        // Deadlines and retries are the store's (call()); the client's own retry policy would
        // multiply the deadline (three tries of 10 s made a paused etcd answer after 31 s).
        defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + attemptFallbackMs }),
        faultHandling: { global: NO_RETRY, host: () => NO_RETRY },
        ...(options.tls
          ? { credentials: { rootCertificate: rootCertificate ?? Buffer.alloc(0), certChain, privateKey } }
          : {}),
        ...(options.auth ? { auth: { username: options.auth.user, password: options.auth.password } } : {}),
      };
      const client = new Etcd3(opts);
      requireLeader(client);
      return client;
    };
    const timeoutMs = options.callTimeoutMs ?? 10_000;
    const attemptFallbackMs = options.attemptTimeoutMs ?? Math.min(5000, Math.max(1000, Math.round(timeoutMs / 3)));
    const store = new EtcdStore(options, makeClient);
    try {
      await store.revision();
    } catch (err) {
      await store.close();
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

  /** A deadline for one store operation: now + callTimeoutMs. */
  deadline(): number {
    return Date.now() + this.timeoutMs;
  }

  /**
   * Runs one etcd call on one member after another until it succeeds, fails for good, or the
   * deadline passes, and casts the client's errors into StoreErrors. `tries`, when given, counts
   * the attempts (a write that needed more than one may have landed on an earlier one).
   */
  async call<R>(what: string, fn: (client: Etcd3, opts: CallOpts) => Promise<R>, deadline = this.deadline(), tries?: { n: number }): Promise<R> {
    const why = new Map<string, string>();
    let round = 0;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new StoreError(`${what}: the etcd store is closed`);
      const i = this.current;
      const member = this.members[i]!;
      const left = deadline - Date.now();
      const budget = Math.max(1, Math.min(left, this.attemptMs));
      if (tries) tries.n++;
      try {
        const result = await withAttemptDeadline(budget, () => fn(member.client, { deadline: Date.now() + budget }));
        this.current = i;
        return result;
      } catch (err) {
        if (!isRetryable(err)) throw this.castError(what, err);
        const reason = shortReason(err);
        // A last attempt cut short by the deadline says less than what the member answered before.
        if (reason !== 'no answer in time' || !why.has(member.host)) why.set(member.host, reason);
        if (this.current === i) this.current = (i + 1) % this.members.length;
        if ((attempt + 1) % this.members.length === 0) round++;
        const remaining = deadline - Date.now();
        const backoff = Math.min(remaining - 20, (attempt + 1) % this.members.length === 0 ? Math.min(2000, 100 * 2 ** (round - 1)) * (0.5 + Math.random() / 2) : 0);
        if (remaining < 20) {
          throw new StoreUnavailableError(
            `store unavailable at ${this.url}: no answer within ${formatSeconds(this.timeoutMs)} ` +
              `(${[...why].map(([h, r]) => `${h}: ${r}`).join('; ')}); ${what} was not done`,
            { cause: err },
          );
        }
        if (backoff > 0) await new Promise((r) => setTimeout(r, backoff));
      }
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
    if (TLS_FAILURE.test(msg)) {
      return new StoreError(
        `${what}: etcd at ${this.where} failed: TLS: ${cleanGrpcMessage(msg)}; check cacert (the CA that signed the members' ` +
          'certificates) and, when etcd requires client certificates, cert and key', { cause: err });
    }
    return new StoreError(
      `${what}: etcd at ${this.where} failed: ${cleanGrpcMessage(msg)}; check that etcd runs and --store/VCCTL_STORE points at it`,
      { cause: err },
    );
  }

  // ---- reads ----------------------------------------------------------------------------------

  async tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined> {
    const r = checkRef(ref);
    const res = await this.call(`get ${describeRef(r)}`, (c, o) => c.kv.range({ key: this.keyOf(r) }, o)) as RangeResponse;
    const kv = res.kvs[0];
    return kv ? decodeObject<T>(kv.value.toString(), Number(kv.mod_revision), kv.key.toString()) : undefined;
  }

  async list<T extends ApiObject>(kind: string, opts: ListOptions = {}): Promise<ListResult<T>> {
    const match = compileLabelSelector(opts.labelSelector);
    const prefix = Buffer.from(this.kindPrefix(kind, opts.namespace));
    const res = await this.call(`list ${kind}`, (c, o) =>
      c.kv.range({ key: prefix, range_end: prefixEnd(prefix) }, o)) as RangeResponse;
    const items: T[] = [];
    for (const kv of res.kvs) {
      let o: T;
      try {
        o = decodeObject<T>(kv.value.toString(), Number(kv.mod_revision), kv.key.toString());
      } catch (err) {
        if (!(err instanceof UndecodableError)) throw err;
        this.reportUndecodable(err);
        continue;
      }
      if (match(o.metadata.labels)) items.push(o);
    }
    return { items, revision: Number(res.header.revision) };
  }

  async revision(): Promise<number> {
    // A range over one key returns the store revision in its header.
    const res = await this.call('read the revision', (c, o) =>
      c.kv.range({ key: Buffer.from(`${this.prefix}/`), limit: 1, keys_only: true }, o)) as RangeResponse;
    return Number(res.header.revision);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async batch(ops: BatchOp[], opts: WriteOptions = {}): Promise<ApiObject[]> {
    const refs = checkBatch(ops);
    if (ops.length === 0) return [];
    const keys = refs.map((r) => this.keyOf(r));
    const what = ops.length === 1 ? `${ops[0].op} ${describeRef(refs[0])}` : `batch of ${ops.length}`;
    const fence = opts.fence;
    const deadline = this.deadline();
    // What each plan was computed from: undefined = absent (creates assume absence unread).
    let current: (KeyValue | undefined)[];
    const toRead = keys.filter((_k, i) => ops[i].op !== 'create');
    if (toRead.length === 0) {
      current = keys.map(() => undefined);
    } else {
      const res = await this.call(what, (c, o) => c.kv.txn({
        success: toRead.map((key) => ({ request_range: { key } })),
      }, o), deadline) as TxnResponse;
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
        const res = await this.call(what, (c, o) => c.kv.txn({
          success: createKeys.map((key) => ({ request_range: { key } })),
        }, o), deadline) as TxnResponse;
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
      const tries = { n: 0 };
      const res = await this.call(what, (c, o) => c.kv.txn({ compare, success, failure }, o), deadline, tries) as TxnResponse;
      if (res.succeeded) {
        const rev = Number(res.header.revision);
        return plans.map((p) => (p.action === 'none' ? p.object : withVersion(p.object, rev)));
      }
      const got = res.responses.map((r) => r.response_range?.kvs[0]);
      // An earlier attempt of this very txn may have been applied before its answer was lost.
      const landed = tries.n > 1 ? landedRevision(plans, got) : undefined;
      if (landed !== undefined) {
        const rev = landed > 0 ? landed : Number(res.header.revision);
        return plans.map((p) => (p.action === 'none' ? p.object : withVersion(p.object, rev)));
      }
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
      resumeAfterDelivered(w, opts.fromRevision, () => delivered);
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
          let event: WatchEvent<T>;
          try {
            event = this.toEvent(kind, ev as unknown as { type: string; kv: KeyValue; prev_kv?: KeyValue }) as WatchEvent<T>;
          } catch (err) {
            // Bytes that are not an object: reported and skipped; the watch goes on.
            delivered = Number((ev as unknown as { kv: KeyValue }).kv.mod_revision);
            this.reportUndecodable(err as Error);
            continue;
          }
          try {
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
        object: decodeObject(ev.kv.value.toString(), revision, ev.kv.key.toString()),
        revision,
      };
    }
    // A delete event carries the previous value unless etcd compacted it away; then the key is
    // all that is known.
    let object: ApiObject | undefined;
    try {
      object = ev.prev_kv ? decodeObject(ev.prev_kv.value.toString(), revision) : undefined;
    } catch {
      object = undefined; // a deleted value that was never an object: the key says what went
    }
    object ??= this.objectFromKey(kind, ev.kv.key.toString(), revision);
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
    await this.call(`compact to revision ${revision}`, (c, o) => c.kv.compact({ revision, physical: true }, o));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.cancel();
    this.watches.clear();
    this.client.close();
    for (const m of this.members) m.client.close();
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

  async grant(ttlSeconds: number): Promise<string> {
    if (!(ttlSeconds > 0)) throw new StoreError(`lease TTL must be positive, got ${ttlSeconds}`);
    const res = await this.store.call('grant a lease', (c, o) => c.leaseClient.leaseGrant({ TTL: Math.ceil(ttlSeconds), ID: 0 }, o));
    return String(res.ID);
  }

  async keepAlive(leaseId: string): Promise<void> {
    const what = `keep lease ${leaseId} alive`;
    const res = await this.store.call(what, async (c, o) => {
      const stream = await c.leaseClient.leaseKeepAlive();
      let timer: NodeJS.Timeout | undefined;
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          timer = setTimeout(() => reject(new AttemptDeadlineError()), Math.max(1, o.deadline - Date.now()));
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.write({ ID: leaseId });
        });
      } finally {
        clearTimeout(timer);
        stream.end();
      }
    });
    if (Number(res.TTL) <= 0) throw new NotFoundError(`${what}: the lease has expired or was revoked; grant a new one`);
  }

  async revoke(leaseId: string): Promise<void> {
    try {
      await this.store.call(`revoke lease ${leaseId}`, (c, o) => c.leaseClient.leaseRevoke({ ID: leaseId }, o));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async putIfAbsent(key: string, value: string, leaseId: string): Promise<number | undefined> {
    const k = this.store.rawKey(key);
    const tries = { n: 0 };
    const res = await this.store.call(`claim ${key}`, (c, o) => c.kv.txn({
      compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: k, value: Buffer.from(value), lease: leaseId } }],
      failure: [{ request_range: { key: k } }],
    }, o), undefined, tries) as TxnResponse;
    if (res.succeeded) return Number(res.header.revision);
    // A retried claim whose first attempt was applied finds its own key: that is a success.
    const kv = res.responses[0]?.response_range?.kvs[0];
    if (tries.n > 1 && kv && kv.value.toString() === value && String(kv.lease) === String(leaseId)) return Number(kv.create_revision);
    return undefined;
  }

  async getRaw(key: string): Promise<{ value: string; createRevision: number } | undefined> {
    const res = await this.store.call(`read ${key}`, (c, o) => c.kv.range({ key: this.store.rawKey(key) }, o)) as RangeResponse;
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
    void this.store.call(`watch ${key}`, (c, o) => c.kv.range({ key: k }, o))
      .then(async (res) => {
        if (done) return;
        const from = Number((res as RangeResponse).header.revision) + 1;
        const w = await this.store.client.watch().key(k).startRevision(String(from)).create();
        watcher = w;
        if (done) { void w.cancel().catch(() => undefined); return; }
        resumeAfterDelivered(w, from, () => 0);
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

// ---- failover helpers ----------------------------------------------------------------------------

/**
 * Makes a watch resume, after any break, right after the last event it delivered (or at
 * `fromRevision` when it delivered none; for a watch from "now", at the revision it was first
 * created). The etcd3 client resumes from the header revision of the last response it got,
 * which may be ahead of events not yet delivered. It re-creates the watch after 'disconnected'
 * with `request.start_revision`, so that is set there. etcd never splits one revision's events
 * over two responses, so resuming after the last delivered revision loses and repeats nothing.
 */
function resumeAfterDelivered(w: Watcher, fromRevision: number, delivered: () => number): void {
  const req = (w as unknown as { request: { start_revision?: string } }).request;
  // Called once the watch is created: the client has just set this to the created header + 1.
  const established = Number(req.start_revision ?? 0);
  w.on('disconnected', () => {
    const last = delivered();
    const resume = last > 0 ? last + 1 : fromRevision > 0 ? fromRevision : established;
    if (resume > 0) req.start_revision = String(resume);
  });
}

/** Per-attempt gRPC call options. */
type CallOpts = { deadline: number };

/** The store ran out of its deadline without an answer from any member (no quorum, all down). */
export class StoreUnavailableError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** An attempt that outlived its share of the deadline. */
class AttemptDeadlineError extends Error {
  constructor() {
    super('no answer in time');
  }
}

/** The etcd3 client's fault-handling policy that runs a call once: retries are the store's. */
const NO_RETRY = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
} as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * Adds etcd's require-leader flag ("hasleader") to every request of this client: a member without
 * a leader answers at once with "no leader", and cancels such a watch when it loses its leader.
 */
function requireLeader(client: Etcd3): void {
  const auth = (client as unknown as { pool: { authenticator: { getMetadata(): Promise<Metadata> } } }).pool.authenticator;
  const get = auth.getMetadata.bind(auth);
  auth.getMetadata = async () => {
    const md = (await get()).clone();
    md.set('hasleader', 'true');
    return md;
  };
}

function withAttemptDeadline<R>(ms: number, fn: () => Promise<R>): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    fn(),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new AttemptDeadlineError()), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Whether another member, or the same one a little later, may answer the call. */
function isRetryable(err: unknown): boolean {
  if (err instanceof AttemptDeadlineError) return true;
  const msg = (err as Error)?.message ?? '';
  if (TLS_FAILURE.test(msg)) return false; // the same on every member and every try
  const name = (err as Error)?.constructor?.name ?? '';
  if (['GRPCUnavailableError', 'GRPCDeadlineExceededError', 'GRPCCancelledError', 'GRPCResourceExhastedError'].includes(name)) return true;
  return /no leader|leader changed|request timed out|timed out|context deadline exceeded|not capable|too many requests|No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|Connection dropped|stream removed|socket hang up/i.test(msg);
}

const TLS_FAILURE = /SSL routines|certificate|handshake|alert number/i;

/**
 * A gRPC error message without its internals: the "14 UNAVAILABLE:" code, OpenSSL's error-stack
 * prefixes, the timestamp and the empty "Resolution note".
 */
export function cleanGrpcMessage(msg: string): string {
  return msg
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/[0-9A-F]{8,}:error:[0-9A-F]+:SSL routines:[a-z0-9_]+:([^:]+):\S+/g, '$1')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, '')
    .replace(/\.?\s*Resolution note:\s*$/s, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** What went wrong with one member, in words (no gRPC internals). */
function shortReason(err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  if (err instanceof AttemptDeadlineError || /deadline exceeded|timed out/i.test(msg) && !/request timed out/.test(msg)) return 'no answer in time';
  if (/no leader/.test(msg)) return 'no leader (cut off from the majority?)';
  if (/leader changed/.test(msg)) return 'leader changed';
  if (/request timed out/.test(msg)) return 'etcd timed out (no quorum?)';
  if (/ECONNREFUSED|connection refused/i.test(msg)) return 'connection refused';
  if (/EHOSTUNREACH|ENETUNREACH|No route/i.test(msg)) return 'unreachable';
  if (/too many requests/.test(msg)) return 'too many requests';
  return 'unavailable';
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Whether the keys read after a failed compare hold exactly what the plans would have written:
 * then an earlier attempt of the same txn was applied. Returns that txn's revision (0 when it only
 * deleted), or undefined.
 */
function landedRevision(plans: WritePlan[], got: (KeyValue | undefined)[]): number | undefined {
  let rev = 0;
  let writes = 0;
  for (const [i, p] of plans.entries()) {
    const kv = got[i];
    if (p.action === 'put') {
      if (!kv || !kv.value.equals(Buffer.from(encodeObject(p.object)))) return undefined;
      const r = Number(kv.mod_revision);
      if (rev !== 0 && r !== rev) return undefined;
      rev = r;
      writes++;
    } else if (p.action === 'delete') {
      if (kv) return undefined;
      writes++;
    }
  }
  return writes > 0 ? rev : undefined;
}
