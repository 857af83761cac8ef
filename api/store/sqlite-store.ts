// SqliteStore: the embedded Store for one machine, on one SQLite file in WAL mode (the approach of
// k3s's kine; see docs/adr/0001-embedded-store.md). Several processes (vcctl, vc-manager) may open
// the same file at once: every write is one IMMEDIATE transaction, readers never block writers,
// and watches poll a change log, so a process sees the others' writes within one poll interval.
//
// Tables: meta (the global revision, the compacted revision), objects (one row per object),
// changes (the change log watches read: one row per changed object per revision), leases and raw
// (lease-bound keys for leader election and fences).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { ApiObject } from '../types.js';
import {
  CompactedError, FencedError, NotFoundError, StoreError,
  type BatchOp, type Fence, type LeaseApi, type ListOptions, type ListResult, type ObjectRef,
  type Watch, type WatchEvent, type WatchEventType, type WatchHandlers, type WatchOptions,
  type WriteOptions,
} from './types.js';
import {
  checkBatch, checkRef, decodeObject, describeRef, encodedPlan, encodeObject, planWrite, UndecodableError, withVersion,
} from './object-semantics.js';
import { compileLabelSelector } from './label-selector.js';
import { StoreBase } from './store-base.js';

export interface SqliteStoreOptions {
  /** How often watches poll the change log, in ms. Default 25. */
  pollIntervalMs?: number;
  /** How long a writer waits for another process's write lock, in ms. Default 10000. */
  busyTimeoutMs?: number;
  /** Change log retention: entries older than this are compacted. Default 1 hour. */
  retainChangesMs?: number;
  /** Change log retention: at most this many entries are kept. Default 100000. */
  maxChanges?: number;
}

/**
 * The store file is damaged: SQLite found a corrupt page or no database where one should be
 * (SQLITE_CORRUPT*, SQLITE_NOTADB, e.g. "database disk image is malformed"). No retry helps and
 * nothing read through the file can be trusted: the store stops serving (every later call throws
 * this error) and tells its onFatal listeners once, as a file that will not open at all does.
 */
export class StoreCorruptError extends StoreError {}

/** A store that can fail for good while open (the embedded one: a damaged file). */
export interface FatalErrorSource {
  /** Calls `listener` once with the error that stopped the store (at once if it already did). */
  onFatal(listener: (err: StoreError) => void): void;
  /** Reads the whole file (SQLite's quick_check); throws StoreCorruptError when it is damaged. */
  checkIntegrity(): void;
}

const SCHEMA_VERSION = 1;
/** Automatic compaction runs after this many writes of this process. */
const COMPACT_EVERY_WRITES = 1000;

type Db = Database.Database;
interface ObjectRow { value: string; create_rev: number; mod_rev: number }
interface ListRow extends ObjectRow { namespace: string; name: string }
interface ChangeRow { revision: number; type: WatchEventType; kind: string; namespace: string; name: string; value: string }
interface RawRow { value: string; create_rev: number; mod_rev: number }

interface ObjectWatcher {
  kind: string;
  namespace?: string;
  next: number;
  handlers: WatchHandlers<ApiObject>;
  closed: boolean;
}
interface RawWatcher {
  key: string;
  state: string;
  onChange: () => void;
  closed: boolean;
}

export class SqliteStore extends StoreBase implements FatalErrorSource {
  readonly backend = 'sqlite' as const;
  readonly leases: LeaseApi;
  readonly path: string;
  private readonly db: Db;
  private readonly opts: Required<SqliteStoreOptions>;
  private readonly stmt: ReturnType<SqliteStore['prepare']>;
  private watchers = new Set<ObjectWatcher>();
  private rawWatchers = new Set<RawWatcher>();
  private timer: NodeJS.Timeout | undefined;
  // The first write of each process checks the change log, so short-lived vcctl runs compact too.
  private writesSinceCompact = COMPACT_EVERY_WRITES - 1;
  private lastCompactCheck = 0;
  private closed = false;
  private fatal: StoreCorruptError | undefined;
  private readonly fatalListeners: ((err: StoreError) => void)[] = [];

  /** Opens (and creates when missing) the store file and its parent directory. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    super();
    this.path = path;
    this.opts = {
      pollIntervalMs: options.pollIntervalMs ?? 25,
      busyTimeoutMs: options.busyTimeoutMs ?? 10_000,
      retainChangesMs: options.retainChangesMs ?? 3_600_000,
      maxChanges: options.maxChanges ?? 100_000,
    };
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      this.db.pragma(`busy_timeout = ${Math.floor(this.opts.busyTimeoutMs)}`);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.migrate();
    } catch (err) {
      if (isCorruption(err)) throw corruptError(path, err);
      throw new StoreError(
        `cannot open the embedded store at ${path}: ${(err as Error).message}; check that the directory is writable ` +
          'and the file is an SQLite database (or choose another with --store file:PATH)',
        { cause: err },
      );
    }
    this.stmt = this.prepare();
    this.leases = new SqliteLeases(this);
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`the store file has schema version ${version}, newer than this program's ${SCHEMA_VERSION}; upgrade the program`);
    }
    if (version === SCHEMA_VERSION) return;
    this.db.transaction(() => {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
        INSERT OR IGNORE INTO meta (k, v) VALUES ('revision', 0), ('compacted', 0);
        CREATE TABLE IF NOT EXISTS objects (
          kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
          create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
          PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS changes (
          revision INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, kind TEXT NOT NULL,
          namespace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, at INTEGER NOT NULL,
          PRIMARY KEY (revision, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
        CREATE TABLE IF NOT EXISTS raw (
          key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
          lease TEXT);
        CREATE INDEX IF NOT EXISTS raw_lease ON raw (lease);
      `);
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  }

  private prepare() {
    const db = this.db;
    return {
      revision: db.prepare<[], { v: number }>(`SELECT v FROM meta WHERE k = 'revision'`),
      compacted: db.prepare<[], { v: number }>(`SELECT v FROM meta WHERE k = 'compacted'`),
      setMeta: db.prepare<[number, string]>(`UPDATE meta SET v = ? WHERE k = ?`),
      getObject: db.prepare<[string, string, string], ObjectRow>(
        `SELECT value, create_rev, mod_rev FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
      listAll: db.prepare<[string], ListRow>(`SELECT namespace, name, value, create_rev, mod_rev FROM objects WHERE kind = ?`),
      listNs: db.prepare<[string, string], ListRow>(
        `SELECT namespace, name, value, create_rev, mod_rev FROM objects WHERE kind = ? AND namespace = ?`),
      putObject: db.prepare<[string, string, string, string, number, number]>(
        `INSERT INTO objects (kind, namespace, name, value, create_rev, mod_rev) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (kind, namespace, name) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev`),
      deleteObject: db.prepare<[string, string, string]>(`DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
      addChange: db.prepare<[number, number, string, string, string, string, string, number]>(
        `INSERT INTO changes (revision, seq, type, kind, namespace, name, value, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      changesFrom: db.prepare<[number], ChangeRow>(
        `SELECT revision, type, kind, namespace, name, value FROM changes WHERE revision >= ? ORDER BY revision, seq`),
      changeCount: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM changes`),
      nthNewestChange: db.prepare<[number], { revision: number }>(
        `SELECT revision FROM changes ORDER BY revision DESC, seq DESC LIMIT 1 OFFSET ?`),
      firstChangeAfter: db.prepare<[number], { revision: number }>(
        `SELECT revision FROM changes WHERE at >= ? ORDER BY revision LIMIT 1`),
      deleteChangesBefore: db.prepare<[number]>(`DELETE FROM changes WHERE revision < ?`),
      expiredLeases: db.prepare<[number], { id: string }>(`SELECT id FROM leases WHERE expires_at <= ?`),
      getLease: db.prepare<[string], { ttl_ms: number; expires_at: number }>(`SELECT ttl_ms, expires_at FROM leases WHERE id = ?`),
      insertLease: db.prepare<[string, number, number]>(`INSERT INTO leases (id, ttl_ms, expires_at) VALUES (?, ?, ?)`),
      renewLease: db.prepare<[number, string]>(`UPDATE leases SET expires_at = ? WHERE id = ?`),
      deleteLease: db.prepare<[string]>(`DELETE FROM leases WHERE id = ?`),
      deleteLeaseKeys: db.prepare<[string]>(`DELETE FROM raw WHERE lease = ?`),
      // A raw key is live unless its lease expired (expired rows are removed lazily by writers).
      getRaw: db.prepare<[number, string], RawRow>(
        `SELECT r.value, r.create_rev, r.mod_rev FROM raw r LEFT JOIN leases l ON l.id = r.lease
         WHERE (r.lease IS NULL OR l.expires_at > ?) AND r.key = ?`),
      rawExists: db.prepare<[string], { n: number }>(`SELECT 1 AS n FROM raw WHERE key = ?`),
      insertRaw: db.prepare<[string, string, number, number, string]>(
        `INSERT INTO raw (key, value, create_rev, mod_rev, lease) VALUES (?, ?, ?, ?, ?)`),
    };
  }

  // ---- reads ----------------------------------------------------------------------------------

  async tryGet<T extends ApiObject>(ref: ObjectRef): Promise<T | undefined> {
    this.checkOpen();
    const r = checkRef(ref);
    const row = this.guard(() => this.stmt.getObject.get(r.kind, r.namespace ?? '', r.name));
    return row ? decodeObject<T>(row.value, row.mod_rev, this.rowKey(r.kind, r.namespace ?? '', r.name)) : undefined;
  }

  async list<T extends ApiObject>(kind: string, opts: ListOptions = {}): Promise<ListResult<T>> {
    this.checkOpen();
    const match = compileLabelSelector(opts.labelSelector);
    // One read transaction, so that the rows and the revision are one consistent snapshot.
    return this.guard(() => this.db.transaction(() => {
      const rows = opts.namespace ? this.stmt.listNs.all(kind, opts.namespace) : this.stmt.listAll.all(kind);
      const items: T[] = [];
      for (const row of rows) {
        let o: T;
        try {
          o = decodeObject<T>(row.value, row.mod_rev, this.rowKey(kind, row.namespace, row.name));
        } catch (err) {
          // Bytes written around the store (e.g. with the sqlite3 shell): reported and skipped.
          if (!(err instanceof UndecodableError)) throw err;
          this.reportUndecodable(err);
          continue;
        }
        if (match(o.metadata.labels)) items.push(o);
      }
      return { items, revision: this.stmt.revision.get()!.v };
    }).deferred());
  }

  async revision(): Promise<number> {
    this.checkOpen();
    return this.guard(() => this.stmt.revision.get()!.v);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async batch(ops: BatchOp[], opts: WriteOptions = {}): Promise<ApiObject[]> {
    this.checkOpen();
    const refs = checkBatch(ops);
    const result = this.writeTx((rev, now) => {
      if (opts.fence) this.checkFence(opts.fence);
      const next = rev + 1;
      let seq = 0;
      const out = ops.map((op, i) => {
        const r = refs[i];
        const ns = r.namespace ?? '';
        const row = this.stmt.getObject.get(r.kind, ns, r.name);
        const stored = row ? decodeObject(row.value, row.mod_rev, this.rowKey(r.kind, ns, r.name)) : undefined;
        const plan = planWrite(op, stored, now);
        if (plan.action === 'none') return plan.object;
        // A DELETED event carries the last stored state (as etcd's previous value does), also
        // when an update removing the last finalizer deleted the object.
        const value = plan.action === 'put' ? encodedPlan(plan) : row ? row.value : encodeObject(plan.object);
        if (plan.action === 'put') {
          this.stmt.putObject.run(r.kind, ns, r.name, value, row ? row.create_rev : next, next);
        } else {
          this.stmt.deleteObject.run(r.kind, ns, r.name);
        }
        this.stmt.addChange.run(next, seq++, plan.action === 'put' ? plan.event : 'DELETED', r.kind, ns, r.name, value, now);
        return withVersion(plan.object, next);
      });
      return { value: out, advanced: seq > 0 };
    });
    this.guard(() => this.maybeCompact(ops.length));
    return result;
  }

  /**
   * Runs fn in one IMMEDIATE transaction (the write lock is taken at BEGIN, so the revision read
   * here cannot be raced by another process), after removing expired leases and their keys. fn
   * returns whether it wrote; then the revision advances by one.
   */
  writeTx<R>(fn: (revision: number, now: number) => { value: R; advanced: boolean }): R {
    this.checkOpen();
    return this.guard(() => this.db.transaction(() => {
      const now = Date.now();
      this.expireLeases(now);
      const rev = this.stmt.revision.get()!.v;
      const { value, advanced } = fn(rev, now);
      if (advanced) this.stmt.setMeta.run(rev + 1, 'revision');
      return value;
    }).immediate());
  }

  private checkFence(fence: Fence): void {
    const raw = this.stmt.getRaw.get(Date.now(), fence.key);
    if (!raw || raw.create_rev !== fence.createRevision) {
      throw new FencedError(
        `write fenced: ${fence.key} ${raw ? `was re-created at revision ${raw.create_rev}` : 'no longer exists'} ` +
          `(the fence expects revision ${fence.createRevision}); this process is no longer the leader`,
      );
    }
  }

  /** Removes expired leases and their keys. Call inside a write transaction. */
  expireLeases(now: number): void {
    for (const { id } of this.stmt.expiredLeases.all(now)) {
      this.stmt.deleteLeaseKeys.run(id);
      this.stmt.deleteLease.run(id);
    }
  }

  // ---- compaction -----------------------------------------------------------------------------

  /**
   * Drops change log entries before `revision`. Watches from an earlier revision then fail with
   * CompactedError. Compacting to a revision at or below the current compaction is a no-op.
   */
  async compact(revision: number): Promise<void> {
    this.checkOpen();
    this.guard(() => this.compactTo(revision));
  }

  private compactTo(revision: number): void {
    this.db.transaction(() => {
      const current = this.stmt.compacted.get()!.v;
      const head = this.stmt.revision.get()!.v;
      const to = Math.min(revision, head + 1);
      if (to <= current) return;
      this.stmt.deleteChangesBefore.run(to);
      this.stmt.setMeta.run(to, 'compacted');
    }).immediate();
  }

  /**
   * Compacts by size and age: on the first write of this process, then every
   * COMPACT_EVERY_WRITES writes or when the age limit (at most a minute) has passed since the
   * last check.
   */
  private maybeCompact(n: number): void {
    this.writesSinceCompact += n;
    const now = Date.now();
    if (this.writesSinceCompact < COMPACT_EVERY_WRITES && now - this.lastCompactCheck < Math.min(60_000, this.opts.retainChangesMs)) return;
    this.writesSinceCompact = 0;
    this.lastCompactCheck = now;
    let to = 0;
    const count = this.stmt.changeCount.get()!.n;
    if (count > this.opts.maxChanges) {
      // Keep whole revisions: compact up to the revision of the oldest entry we keep.
      to = this.stmt.nthNewestChange.get(this.opts.maxChanges - 1)?.revision ?? 0;
    }
    const young = this.stmt.firstChangeAfter.get(Date.now() - this.opts.retainChangesMs);
    const byAge = young ? young.revision : this.stmt.revision.get()!.v + 1;
    to = Math.max(to, byAge);
    if (to > 0) this.compactTo(to);
  }

  // ---- watch ----------------------------------------------------------------------------------

  watch<T extends ApiObject>(kind: string, opts: WatchOptions, handlers: WatchHandlers<T>): Watch {
    this.checkOpen();
    const from = opts.fromRevision > 0 ? opts.fromRevision : this.guard(() => this.stmt.revision.get()!.v) + 1;
    const w: ObjectWatcher = {
      kind, namespace: opts.namespace, next: from, handlers: handlers as WatchHandlers<ApiObject>, closed: false,
    };
    this.watchers.add(w);
    this.startPolling();
    return { close: () => { w.closed = true; this.watchers.delete(w); this.stopPollingIfIdle(); } };
  }

  /** Called by SqliteLeases.watchRaw. */
  addRawWatcher(key: string, onChange: () => void): Watch {
    this.checkOpen();
    const w: RawWatcher = { key, state: this.guard(() => this.rawState(key)), onChange, closed: false };
    this.rawWatchers.add(w);
    this.startPolling();
    return { close: () => { w.closed = true; this.rawWatchers.delete(w); this.stopPollingIfIdle(); } };
  }

  rawState(key: string): string {
    const r = this.stmt.getRaw.get(Date.now(), key);
    return r ? `${r.create_rev}/${r.mod_rev}` : 'absent';
  }

  private startPolling(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), this.opts.pollIntervalMs);
    setImmediate(() => this.poll());
  }

  private stopPollingIfIdle(): void {
    if (this.timer && this.watchers.size === 0 && this.rawWatchers.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** One poll: raw watchers, then every object watcher gets the changes from its next revision. */
  private poll(): void {
    if (this.closed) return;
    try {
      this.pollOnce();
    } catch (err) {
      // The file became unreadable (deleted, disk error): end every watch rather than spin. A
      // damaged file stops the store (guard); the watches end with that error.
      const fatal = this.asFatal(err);
      const e = fatal instanceof StoreCorruptError ? fatal
        : new StoreError(`watching the store ${this.path} failed: ${(err as Error).message}; list again`, { cause: err });
      for (const w of [...this.watchers]) this.endWatch(w, e);
      for (const w of [...this.rawWatchers]) { w.closed = true; this.rawWatchers.delete(w); w.onChange(); }
      this.stopPollingIfIdle();
    }
  }

  private pollOnce(): void {
    for (const w of [...this.rawWatchers]) {
      if (w.closed || this.rawState(w.key) === w.state) continue;
      w.closed = true;
      this.rawWatchers.delete(w);
      w.onChange();
    }
    if (this.watchers.size > 0) this.pollChanges();
    this.stopPollingIfIdle();
  }

  private pollChanges(): void {
    const { head, compacted, rows } = this.db.transaction(() => {
      const head = this.stmt.revision.get()!.v;
      const compacted = this.stmt.compacted.get()!.v;
      let min = Infinity;
      for (const w of this.watchers) min = Math.min(min, Math.max(w.next, compacted));
      const rows = min <= head ? this.stmt.changesFrom.all(min) : [];
      return { head, compacted, rows };
    }).deferred();
    for (const w of [...this.watchers]) {
      if (w.next < compacted) {
        this.endWatch(w, new CompactedError(
          `watch ${w.kind} from revision ${w.next}: the change log was compacted up to revision ${compacted}; ` +
            'list again and watch from the list revision',
        ));
        continue;
      }
      for (const row of rows) {
        if (w.closed) break;
        if (row.revision < w.next || row.kind !== w.kind) continue;
        if (w.namespace !== undefined && row.namespace !== w.namespace) continue;
        const ev = this.toEvent(row);
        if (!ev) continue;
        try {
          w.handlers.onEvent(ev);
        } catch (err) {
          this.endWatch(w, new StoreError(`watch ${w.kind}: the event handler threw; the watch is closed`, { cause: err }));
        }
      }
      if (!w.closed && head >= w.next) w.next = head + 1;
    }
  }

  /** How a row is named in a message about its value: `VirtualCluster ns/name in /path/store.db`. */
  private rowKey(kind: string, namespace: string, name: string): string {
    return `${describeRef({ kind, namespace: namespace || undefined, name })} in ${this.path}`;
  }

  /**
   * The event of one change row. A value that is not an object is reported and skipped (undefined),
   * except in a DELETED event: the object is gone either way, and its row names it.
   */
  private toEvent(row: ChangeRow): WatchEvent<ApiObject> | undefined {
    try {
      return { type: row.type, object: decodeObject(row.value, row.revision, this.rowKey(row.kind, row.namespace, row.name)), revision: row.revision };
    } catch (err) {
      if (!(err instanceof UndecodableError)) throw err;
      if (row.type === 'DELETED') {
        const metadata = { name: row.name, resourceVersion: String(row.revision), ...(row.namespace ? { namespace: row.namespace } : {}) };
        return { type: 'DELETED', object: { apiVersion: '', kind: row.kind, metadata }, revision: row.revision };
      }
      this.reportUndecodable(err);
      return undefined;
    }
  }

  private endWatch(w: ObjectWatcher, err: Error): void {
    if (w.closed) return;
    w.closed = true;
    this.watchers.delete(w);
    w.handlers.onError(err);
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const w of this.watchers) w.closed = true;
    for (const w of this.rawWatchers) w.closed = true;
    this.watchers.clear();
    this.rawWatchers.clear();
    this.db.close();
  }

  checkOpen(): void {
    if (this.fatal) throw this.fatal;
    if (this.closed) throw new StoreError(`the store ${this.path} is closed`);
  }

  // ---- a damaged file -------------------------------------------------------------------------

  onFatal(listener: (err: StoreError) => void): void {
    if (this.fatal) listener(this.fatal);
    else this.fatalListeners.push(listener);
  }

  checkIntegrity(): void {
    this.checkOpen();
    const rows = this.guard(() => this.db.pragma('quick_check') as { quick_check: string }[]);
    if (rows.length !== 1 || rows[0].quick_check !== 'ok') {
      const what = rows.slice(0, 3).map((r) => r.quick_check).join('; ');
      throw this.asFatal(Object.assign(new Error(`integrity check failed: ${what}`), { code: 'SQLITE_CORRUPT' }));
    }
  }

  /**
   * Runs fn (SQLite calls); a damaged-file error becomes this store's fatal error, thrown by
   * every later call. @internal for SqliteLeases too.
   */
  guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.asFatal(err);
    }
  }

  private asFatal(err: unknown): unknown {
    if (!isCorruption(err)) return err;
    if (!this.fatal) {
      this.fatal = corruptError(this.path, err);
      for (const l of this.fatalListeners.splice(0)) l(this.fatal);
    }
    return this.fatal;
  }

  /** @internal for SqliteLeases */
  get statements(): ReturnType<SqliteStore['prepare']> {
    return this.stmt;
  }
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

function corruptError(path: string, err: unknown): StoreCorruptError {
  return new StoreCorruptError(
    `the embedded store ${path} is damaged (${(err as Error).message}): stop every vc-manager and vcctl using it and ` +
      `restore the file from a backup; sqlite3 ${path} "PRAGMA integrity_check" shows what is broken`,
    { cause: err },
  );
}

class SqliteLeases implements LeaseApi {
  constructor(private readonly store: SqliteStore) {}

  async grant(ttlSeconds: number): Promise<string> {
    if (!(ttlSeconds > 0)) throw new StoreError(`lease TTL must be positive, got ${ttlSeconds}`);
    const id = randomBytes(8).toString('hex');
    const ttlMs = Math.round(ttlSeconds * 1000);
    this.store.writeTx((_rev, now) => {
      this.store.statements.insertLease.run(id, ttlMs, now + ttlMs);
      return { value: undefined, advanced: false };
    });
    return id;
  }

  async keepAlive(leaseId: string): Promise<void> {
    this.store.writeTx((_rev, now) => {
      // Expired leases were removed by writeTx before this runs.
      const l = this.store.statements.getLease.get(leaseId);
      if (!l) throw new NotFoundError(`lease ${leaseId} has expired or was revoked; grant a new one`);
      this.store.statements.renewLease.run(now + l.ttl_ms, leaseId);
      return { value: undefined, advanced: false };
    });
  }

  async revoke(leaseId: string): Promise<void> {
    this.store.writeTx(() => {
      this.store.statements.deleteLeaseKeys.run(leaseId);
      this.store.statements.deleteLease.run(leaseId);
      return { value: undefined, advanced: false };
    });
  }

  async putIfAbsent(key: string, value: string, leaseId: string): Promise<number | undefined> {
    return this.store.writeTx((rev) => {
      const s = this.store.statements;
      if (!s.getLease.get(leaseId)) throw new NotFoundError(`lease ${leaseId} has expired or was revoked; grant a new one`);
      if (s.rawExists.get(key)) return { value: undefined, advanced: false };
      s.insertRaw.run(key, value, rev + 1, rev + 1, leaseId);
      return { value: rev + 1, advanced: true };
    });
  }

  async getRaw(key: string): Promise<{ value: string; createRevision: number } | undefined> {
    this.store.checkOpen();
    const s = this.store.statements;
    const now = Date.now();
    const r = this.store.guard(() => s.getRaw.get(now, key));
    if (!r && this.store.guard(() => s.rawExists.get(key))) {
      // The key's lease expired: remove it now rather than at the next write.
      this.store.writeTx((_rev, t) => { this.store.expireLeases(t); return { value: undefined, advanced: false }; });
    }
    return r ? { value: r.value, createRevision: r.create_rev } : undefined;
  }

  watchRaw(key: string, onChange: () => void): Watch {
    return this.store.addRawWatcher(key, onChange);
  }
}
