// EtcdKvStore: the part of the etcd Store that needs only unary KV calls (Range, Txn): keys,
// reads, the transactional batch, and the per-operation deadline with failover across members.
// Two stores build on it: EtcdStore (etcd-store.ts; the etcd3 package's gRPC clients, plus
// watches and leases) and EtcdLiteStore (etcd-lite/; vcctl's one-shot commands over node:http2
// with hand-written protobuf, no watches or leases). The semantics are described in
// etcd-store.ts's header; they hold for both, since the code here is the same for both.
//
// C is the client of one member; what this file calls on it is KvClient. The message shapes are
// those of etcd-lite/proto.ts, which are the etcd3 package's with its loader options.

import { readFileSync } from 'node:fs';
import type { ApiObject } from '../types.js';
import { resolveKind } from '../kinds.js';
import {
  ConflictError, CompactedError, FencedError, NotFoundError, StoreError,
  type BatchOp, type Fence, type ListOptions, type ListResult, type ObjectRef, type WriteOptions,
} from './types.js';
import {
  checkBatch, checkRef, decodeObject, describeRef, encodedPlan, planWrite, UndecodableError, withVersion, type WritePlan,
} from './object-semantics.js';
import { compileLabelSelector } from './label-selector.js';
import { StoreBase } from './store-base.js';
import type { Compare, KeyValue, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse } from './etcd-lite/proto.js';

export type { Compare, KeyValue, RangeResponse, RequestOp, TxnResponse };

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

/** What the code here calls on a member's client (the etcd3 client has it, as has the light one). */
export interface KvClient {
  kv: {
    range(req: RangeRequest, opts?: CallOpts): Promise<unknown>;
    txn(req: TxnRequest, opts?: CallOpts): Promise<unknown>;
  };
}

/** Most attempts of one write whose compares keep failing without a definite error. */
const MAX_ATTEMPTS = 50;

export abstract class EtcdKvStore<C extends KvClient> extends StoreBase {
  readonly backend = 'etcd' as const;
  readonly prefix: string;
  protected readonly where: string;
  /** etcd://H:P,H:P: how messages name this store. */
  protected readonly url: string;
  /** One client per endpoint, in the order given; unary calls go through these. */
  protected readonly members: { host: string; client: C }[];
  /** Index of the member that answered last. */
  private current = 0;
  protected readonly timeoutMs: number;
  protected readonly attemptMs: number;
  protected closed = false;

  protected constructor(options: EtcdStoreOptions, makeClient: (endpoint: string) => C) {
    super();
    this.members = options.endpoints.map((e) => ({ host: e.replace(/^https?:\/\//, ''), client: makeClient(e) }));
    this.prefix = (options.prefix ?? '/virtualinux').replace(/\/+$/, '');
    this.where = options.endpoints.join(',');
    this.url = `etcd://${this.members.map((m) => m.host).join(',')}`;
    this.timeoutMs = options.callTimeoutMs ?? 10_000;
    this.attemptMs = options.attemptTimeoutMs ?? defaultAttemptMs(this.timeoutMs);
  }

  // ---- keys -----------------------------------------------------------------------------------

  kindPrefix(kind: string, namespace?: string): string {
    const plural = resolveKind(kind)?.plural ?? `${kind.toLowerCase()}s`;
    return `${this.prefix}/${plural}/${namespace ? `${namespace}/` : ''}`;
  }

  protected keyOf(ref: ObjectRef): Buffer {
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
  async call<R>(what: string, fn: (client: C, opts: CallOpts) => Promise<R>, deadline = this.deadline(), tries?: { n: number }): Promise<R> {
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

  /**
   * Runs one idempotent etcd call on every member at once and takes the first answer: for a call
   * that must not wait for one member that hangs or is cut off (the leader's lease renewal, which
   * has a third of its TTL, where call() would give that member a whole attempt first). A member's
   * definite failure (not retryable) is the answer; retryable ones count only when every member
   * failed, or none answered by the deadline.
   */
  async callEvery<R>(what: string, fn: (client: C, opts: CallOpts) => Promise<R>, deadline = this.deadline()): Promise<R> {
    if (this.closed) throw new StoreError(`${what}: the etcd store is closed`);
    const why = new Map<string, string>();
    const budget = Math.max(1, deadline - Date.now());
    const tries = this.members.map((member) =>
      withAttemptDeadline(budget, () => fn(member.client, { deadline: Date.now() + budget })).catch((err: unknown) => {
        if (!isRetryable(err)) throw Object.assign(new DefiniteFailure(), { err });
        why.set(member.host, shortReason(err));
        throw err;
      }));
    try {
      return await Promise.any(tries);
    } catch (agg) {
      const errors = (agg as AggregateError).errors;
      const definite = errors.find((e): e is DefiniteFailure => e instanceof DefiniteFailure);
      if (definite) throw this.castError(what, definite.err);
      throw new StoreUnavailableError(
        `store unavailable at ${this.url}: no member answered within ${formatSeconds(budget)} ` +
          `(${[...why].map(([h, r]) => `${h}: ${r}`).join('; ')}); ${what} was not done`,
        { cause: errors[0] },
      );
    }
  }

  castError(what: string, err: unknown): Error {
    if (err instanceof StoreError) return err;
    const e = err as Error;
    const msg = e?.message ?? String(err);
    if (/lease not found/.test(msg)) {
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
    // What each plan was computed from: undefined = absent (creates assume absence unread; an
    // operation on an object the caller gave as read, WriteOptions.read, assumes it at its resourceVersion).
    let current: (Stored | undefined)[];
    const asRead = storedAsRead(ops, refs, opts.read);
    const toRead = keys.filter((_k, i) => ops[i].op !== 'create' && !asRead[i]);
    let read: (KeyValue | undefined)[] = [];
    if (toRead.length > 0) {
      const res = await this.call(what, (c, o) => c.kv.txn({
        success: toRead.map((key) => ({ request_range: { key } })),
      }, o), deadline) as TxnResponse;
      read = res.responses.map((r) => r.response_range?.kvs[0]);
    }
    let j = 0;
    current = ops.map((op, i) => (op.op === 'create' ? undefined : asRead[i] ?? storedOf(read[j++])));
    let createsRead = !ops.some((op) => op.op === 'create');
    for (let attempt = 1; ; attempt++) {
      const now = Date.now();
      let plans: WritePlan[];
      try {
        plans = ops.map((op, i) => planWrite(op, current[i]?.object, now));
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
        current = ops.map((op, i) => (op.op === 'create' ? storedOf(read[j++]) : current[i]));
        attempt--;
        continue;
      }
      const compare: Compare[] = keys.map((key, i) => {
        const st = current[i];
        return st
          ? { key, target: 'Mod', result: 'Equal', mod_revision: st.modRevision }
          : { key, target: 'Create', result: 'Equal', create_revision: 0 };
      });
      if (fence) compare.push({ key: this.rawKey(fence.key), target: 'Create', result: 'Equal', create_revision: fence.createRevision });
      const success: RequestOp[] = [];
      plans.forEach((p, i) => {
        if (p.action === 'put') success.push({ request_put: { key: keys[i], value: Buffer.from(encodedPlan(p)) } });
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
      current = got.slice(0, keys.length).map(storedOf);
      if (attempt >= MAX_ATTEMPTS) {
        throw new ConflictError(`${what}: the objects kept changing during ${MAX_ATTEMPTS} attempts; retry later`);
      }
    }
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

/** Per-attempt gRPC call options. */
export type CallOpts = { deadline: number };

/** The store ran out of its deadline without an answer from any member (no quorum, all down). */
export class StoreUnavailableError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** callEvery's mark on a member's failure that another member would not change (not retryable). */
class DefiniteFailure extends Error {
  err: unknown;
}

/** An attempt that outlived its share of the deadline. */
export class AttemptDeadlineError extends Error {
  constructor() {
    super('no answer in time');
  }
}


/** The TLS files the options name, read; a file that cannot be read is a StoreError naming it. */
export function readTlsFiles(tls: EtcdStoreOptions['tls']): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StoreError(`cannot read the etcd ${what} file ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { ca: read('CA certificate', tls?.cacert), cert: read('client certificate', tls?.cert), key: read('client key', tls?.key) };
}

/** The store once etcd has answered it (a wrong address fails here, clearly); closed when not. */
export async function answering<S extends EtcdKvStore<KvClient>>(store: S): Promise<S> {
  try {
    await store.revision();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/** An attempt's default share of an operation's deadline: a third of it, 1-5 s. */
export function defaultAttemptMs(timeoutMs: number): number {
  return Math.min(5000, Math.max(1000, Math.round(timeoutMs / 3)));
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
  // The light client's errors carry the gRPC code: UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED.
  if (name === 'GrpcCallError' && [14, 4, 1, 8].includes((err as { code?: number }).code ?? -1)) return true;
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

/** A stored object as a write's plan sees it, and the revision its compare pins. */
interface Stored {
  object: ApiObject;
  modRevision: string;
}

function storedOf(kv: KeyValue | undefined): Stored | undefined {
  return kv ? { object: decodeObject(kv.value.toString(), Number(kv.mod_revision)), modRevision: String(kv.mod_revision) } : undefined;
}

/** Per operation, its object in `read` (WriteOptions.read) with a resourceVersion, as stored then. */
function storedAsRead(ops: BatchOp[], refs: ObjectRef[], read: readonly ApiObject[] | undefined): (Stored | undefined)[] {
  if (!read || read.length === 0) return [];
  const at = (kind: string, namespace: string | undefined, name: string) => `${kind}/${namespace ?? ''}/${name}`;
  const byRef = new Map(read.map((o) => [at(o.kind, o.metadata.namespace, o.metadata.name), o]));
  return ops.map((op, i) => {
    const o = op.op === 'create' ? undefined : byRef.get(at(refs[i].kind, refs[i].namespace, refs[i].name));
    const rv = o?.metadata.resourceVersion;
    return o && rv && /^[1-9][0-9]*$/.test(rv) ? { object: o, modRevision: rv } : undefined;
  });
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
      if (!kv || !kv.value.equals(Buffer.from(encodedPlan(p)))) return undefined;
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
