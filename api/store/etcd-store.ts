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

import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Watcher } from 'etcd3';
import type { Metadata } from '@grpc/grpc-js';
import type { ApiObject } from '../types.js';
import {
  CompactedError, NotFoundError, StoreError,
  type LeaseApi, type Watch, type WatchEvent, type WatchHandlers, type WatchOptions,
} from './types.js';
import { decodeObject } from './object-semantics.js';
import {
  answering, AttemptDeadlineError, defaultAttemptMs, EtcdKvStore, readTlsFiles, type EtcdStoreOptions, type KeyValue, type RangeResponse, type TxnResponse,
} from './etcd-kv-store.js';

export { cleanGrpcMessage, StoreUnavailableError, type EtcdStoreOptions } from './etcd-kv-store.js';

// grpc-js names the server by its address for TLS (SNI), and Node warns (DEP0123) when that is an
// IP address, on stderr of every vcctl run against members given by address. The certificate is
// still checked against the address; only this one warning is dropped.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
  if (code === 'DEP0123') return;
  (emitWarning as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

/**
 * The HTTP/2 flow control window of the connections to etcd (connection and streams), bytes: a
 * list of 2,500 VirtualClusters (~6 MiB) arrives within one window, and what etcd may send ahead
 * of a busy reader (a watch) stays bounded per stream.
 */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

export class EtcdStore extends EtcdKvStore<Etcd3> {
  readonly leases: LeaseApi;
  /** A client of every member: watches (the client resumes them on any member) and tools. */
  readonly client: Etcd3;
  private readonly watchBrokenAfterMs: number;
  private readonly watches = new Set<{ cancel(): void }>();

  private constructor(options: EtcdStoreOptions, makeClient: (hosts: string[]) => Etcd3) {
    super(options, (e) => makeClient([e]));
    this.client = makeClient(options.endpoints);
    this.watchBrokenAfterMs = options.watchBrokenAfterMs ?? 10_000;
    this.leases = new EtcdLeases(this);
  }

  override castError(what: string, err: unknown): Error {
    if (err instanceof EtcdLeaseInvalidError) {
      return new NotFoundError(`${what}: the lease has expired or was revoked; grant a new one`, { cause: err });
    }
    return super.castError(what, err);
  }

  /** Connects and checks that etcd answers, so a wrong address fails here with a clear message. */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    const { ca: rootCertificate, cert: certChain, key: privateKey } = readTlsFiles(options.tls);
    const makeClient = (hosts: string[]): Etcd3 => {
      const opts: IOptions = {
        hosts,
        dialTimeout: 2000,
        // Lists of many objects exceed grpc's default 4 MiB message limit.
        grpcOptions: {
          'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024,
          // HTTP/2 flow control: with the default 64 KiB window, a response streams 64 KiB per
          // window update, each waiting for a turn of this process's event loop; a busy manager
          // (loop lag 0.1-0.3 s) took over 10 s to receive a list of 2,500 VirtualClusters and every
          // such list failed at the store's deadline (hack/bench-scale, session 11: network/subnets
          // never made its ledger). A window of FLOW_CONTROL_WINDOW lets a large answer arrive at once.
          'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
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
    const attemptFallbackMs = options.attemptTimeoutMs ?? defaultAttemptMs(timeoutMs);
    return answering(new EtcdStore(options, makeClient));
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

class EtcdLeases implements LeaseApi {
  constructor(private readonly store: EtcdStore) {}

  async grant(ttlSeconds: number): Promise<string> {
    if (!(ttlSeconds > 0)) throw new StoreError(`lease TTL must be positive, got ${ttlSeconds}`);
    const res = await this.store.call('grant a lease', (c, o) => c.leaseClient.leaseGrant({ TTL: Math.ceil(ttlSeconds), ID: 0 }, o));
    return String(res.ID);
  }

  async keepAlive(leaseId: string, deadline?: number): Promise<void> {
    const what = `keep lease ${leaseId} alive`;
    const res = await this.store.callEvery(what, async (c, o) => {
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
    }, deadline);
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

/**
 * The etcd3 client's fault-handling policy that runs a call once: retries are the store's. The
 * client never reads the signal it is handed, so one that is never aborted serves every call (a new
 * AbortController per request was ~0.6 % of a 10,000-VM manager's CPU, hack/bench-scale).
 */
const NEVER_ABORTED = new AbortController().signal;
const NO_RETRY = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: NEVER_ABORTED, attempt: 0 })),
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

