// One sync of a manifest directory into the store, and the GitSource object that records it.
//
// A sync is all-or-nothing up to the first write: the directory is read and every document
// validated (api/input, the same code as `vcctl apply`), duplicates and the prune plan are checked,
// and the whole revision is dry-run against the store before anything is written. Only then are
// the objects applied in dependency order (three-way merge, api/apply) and, with prune, the
// objects of the inventory that left the directory deleted. Whatever happens, the GitSource's
// status says which revision was applied, what was refused and why.
//
// Inventory safety: after a partial apply the inventory is the union of the old inventory and the
// revision's objects, so an object that did get written is never lost from the inventory (and can
// be pruned later); entries that never got written are forgotten by the next sync, because their
// live copy is missing.

import { createHash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { resolveKind } from '../../api/kinds.js';
import type { ApiObject } from '../../api/types.js';
import { describeRef } from '../../api/store/object-semantics.js';
import { AlreadyExistsError, ConflictError, NotFoundError, type Store } from '../../api/store/types.js';
import {
  findWorkTreeRoot, hasUncommittedChanges, pullFastForward, readHeadCommit, readMatchesHead, type ReadFileDigest,
} from './git-work-tree.js';
import {
  annotateForSource, inventoryKey, orderForApply, planPrune, refOf, sourceId,
  type InventoryEntry,
} from './plan-sync.js';
import type { EventRecorder } from '../../controllers/types.js';
import {
  statusAfterSync, truncateMessage, type GitSource, type GitSourceSpec, type SyncFailureReason, type SyncOutcome,
} from './sync-status.js';

/** What the sync needs from the API layer: the same reading and applying as `vcctl apply`. */
export interface SyncDeps {
  /**
   * Reads every manifest under dir (recursively, *.yaml/*.yml/*.json, .git skipped; symbolic links
   * leaving dir and non-regular files refused) and validates all of them. Throws one error naming
   * file, document, line and JSON path of every invalid document. Files are named in messages as
   * `displayRoot/REL` when displayRoot is given. Returns the objects and a digest of every file read.
   */
  readManifests(dir: string, opts?: { displayRoot?: string }): Promise<ReadRevision>;
  /** Applies with the three-way merge of `vcctl apply`, in the given order. */
  applyObjects(store: Store, objects: ApiObject[], opts: { dryRun: boolean }): Promise<AppliedObject[]>;
}

export interface ReadRevision {
  objects: ApiObject[];
  files: ReadFileDigest[];
}

/**
 * Where a source managed by vc-manager reads from: a checkout of spec.ref made for this sync
 * (reconcilers/gitops/git-fetcher). The GitSource's spec is the user's; the syncer never writes it.
 */
export interface RemoteCheckout {
  /**
   * Fetches and checks out the commit to apply. Returns the directory to read (spec.path inside
   * the checkout), the commit, and the name files have in messages (spec.path). Rejects with a
   * message a user can act on when the repository cannot be fetched.
   */
  checkout(): Promise<{ dir: string; commit: string; displayRoot: string }>;
}

export interface AppliedObject {
  ref: InventoryEntry;
  /** created | configured | unchanged (kubectl's words). */
  action: string;
}

export interface GitSourceSyncerOptions {
  dir: string;
  /** GitSource name; derived from dir by the caller when the user gave none. */
  name: string;
  /** Whether the user chose the name (--name). A derived name never takes over another directory's source. */
  nameGiven: boolean;
  namespace: string;
  prune: boolean;
  allowEmpty: boolean;
  /** Recorded in spec.interval (as the user wrote it). */
  interval?: string;
  env?: NodeJS.ProcessEnv;
  /** Records an Event on the GitSource for every failed sync and every sync that changed something. */
  events?: EventRecorder;
  /** A source vc-manager syncs from a remote (spec.url): read a fresh checkout, never write the spec. */
  remote?: RemoteCheckout;
}

export interface SyncReport {
  outcome: SyncOutcome;
  applied: AppliedObject[];
  pruned: InventoryEntry[];
  source: GitSource;
}

/**
 * The revision recorded for what was read: the checked-out commit; with uncommitted changes under
 * the directory `<commit>-dirty-<digest>`; outside a work tree `sha256:<digest>`. The digest is of
 * the objects read, so it changes exactly when the desired state does.
 */
export function revisionOf(checkout: { commit?: string; dirty: boolean }, objects: ApiObject[]): string {
  const digest = createHash('sha256').update(JSON.stringify(objects)).digest('hex');
  if (!checkout.commit) return `sha256:${digest}`;
  return checkout.dirty ? `${checkout.commit}-dirty-${digest.slice(0, 12)}` : checkout.commit;
}

class SyncFailure extends Error {
  constructor(
    public readonly reason: SyncFailureReason,
    message: string,
    public readonly partial: { inventory?: InventoryEntry[]; applied?: number; pruned?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SyncFailure';
  }
}

const STATUS_WRITE_ATTEMPTS = 5;

export class GitSourceSyncer {
  private absDir: string | undefined;

  constructor(
    private readonly store: Store,
    private readonly opts: GitSourceSyncerOptions,
    private readonly deps: SyncDeps,
  ) {}

  get ref(): { kind: 'GitSource'; namespace: string; name: string } {
    return { kind: 'GitSource', namespace: this.opts.namespace, name: this.opts.name };
  }

  /**
   * One sync. With pull, first fast-forwards the work tree from its remote. Never throws for a
   * failed sync (the report and the GitSource status say why); throws only when the GitSource
   * itself cannot be read or written.
   */
  async sync(opts: { pull?: boolean } = {}): Promise<SyncReport> {
    // A directory that cannot be read on the very first sync is most likely a typo: fail without
    // creating a GitSource for it. A source that exists records the failure in its status.
    if (!this.opts.remote) {
      const unreadable = await this.directory().then(() => undefined, (err: unknown) => err);
      if (unreadable && !(await this.store.tryGet(this.ref))) {
        throw new Error(`${(unreadable as Error).message}; check --dir (no GitSource was created)`, { cause: unreadable });
      }
    }
    const source = this.opts.remote ? await this.existingSource() : await this.ensureSource();
    const applied: AppliedObject[] = [];
    const pruned: InventoryEntry[] = [];
    let revision: string | undefined;
    let fetchedRevision: string | undefined;
    let outcome: SyncOutcome;
    try {
      let dir: string;
      let displayRoot: string | undefined;
      if (this.opts.remote) {
        ({ dir, commit: fetchedRevision, displayRoot } = await this.fetch(this.opts.remote));
      } else {
        dir = await this.directory();
        if (opts.pull) await this.pull(dir);
      }
      const checkout = await this.checkoutOf(dir);
      revision = checkout.commit && (checkout.dirty ? `${checkout.commit}-dirty` : checkout.commit);
      const read = await this.read(dir, displayRoot);
      // Clean only when what was read is exactly what the commit holds (issue 24.3): a link that
      // leads elsewhere, an ignored file, a file changed during the read all make it dirty.
      const dirty = checkout.dirty || (checkout.commit !== undefined && !(await readMatchesHead(dir, read.files, this.opts.env)));
      revision = revisionOf({ commit: checkout.commit, dirty }, read.objects);
      outcome = await this.applyRevision(source, read.objects, revision, applied, pruned);
    } catch (err) {
      if (!(err instanceof SyncFailure)) throw err;
      outcome = { ok: false, reason: err.reason, message: err.message, revision, ...err.partial };
    }
    if (fetchedRevision) outcome.fetchedRevision = fetchedRevision;
    const written = await this.writeStatus(outcome, source.status?.inventory ?? []);
    this.recordEvent(written, outcome, applied);
    return { outcome, applied, pruned, source: written };
  }

  /** The GitSource of a remote source: the user's object, read as it is. */
  private async existingSource(): Promise<GitSource> {
    const cur = await this.store.tryGet<GitSource>(this.ref);
    if (!cur) throw new NotFoundError(`GitSource ${this.opts.namespace}/${this.opts.name} not found`);
    return cur;
  }

  private async fetch(remote: RemoteCheckout): Promise<{ dir: string; commit: string; displayRoot: string }> {
    try {
      return await remote.checkout();
    } catch (err) {
      if (err instanceof SyncFailure) throw err;
      // A checkout names its reason (git-fetcher CheckoutError: a bad spec.path is ValidationFailed).
      const named = (err as { reason?: unknown }).reason;
      const reason: SyncFailureReason = named === 'ValidationFailed' || named === 'SourceUnavailable' ? named : 'FetchFailed';
      throw new SyncFailure(reason, (err as Error).message, {}, { cause: err });
    }
  }

  /** Creates the GitSource, or brings its spec in line with this invocation. */
  private async ensureSource(): Promise<GitSource> {
    const dir = await this.directory().catch(() => resolve(this.opts.dir));
    const spec: GitSourceSpec = { dir, prune: this.opts.prune };
    if (this.opts.interval) spec.interval = this.opts.interval;
    for (let attempt = 0; ; attempt++) {
      const cur = await this.store.tryGet<GitSource>(this.ref);
      if (!cur) {
        try {
          return await this.store.create<GitSource>({
            apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource',
            metadata: { name: this.opts.name, namespace: this.opts.namespace }, spec,
          });
        } catch (err) {
          if (err instanceof AlreadyExistsError && attempt < STATUS_WRITE_ATTEMPTS) continue;
          throw err;
        }
      }
      if (cur.spec?.url) {
        throw new Error(
          `GitSource ${this.opts.namespace}/${this.opts.name} is synced by vc-manager from ${cur.spec.url}; ` +
            'vcctl sync does not take it over. Pass --name to sync this directory as another source',
        );
      }
      if (cur.spec?.dir && cur.spec.dir !== dir && !this.opts.nameGiven) {
        throw new Error(
          `GitSource ${this.opts.namespace}/${this.opts.name} already syncs ${cur.spec.dir}, not ${dir}: ` +
            'its inventory belongs to that directory. Pass --name to sync this directory as another source, ' +
            `or --name ${this.opts.name} to move the source here`,
        );
      }
      if (JSON.stringify(cur.spec) === JSON.stringify(spec)) return cur;
      try {
        return await this.store.update<GitSource>({ ...cur, spec });
      } catch (err) {
        if (err instanceof ConflictError && attempt < STATUS_WRITE_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  private async directory(): Promise<string> {
    if (this.absDir) return this.absDir;
    let abs: string;
    try {
      abs = await realpath(this.opts.dir);
      if (!(await stat(abs)).isDirectory()) throw new Error(`${abs} is not a directory`);
    } catch (err) {
      throw new SyncFailure('SourceUnavailable', `cannot read the directory ${this.opts.dir}: ${(err as Error).message}`, {}, { cause: err });
    }
    this.absDir = abs;
    return abs;
  }

  private async pull(dir: string): Promise<void> {
    const root = await findWorkTreeRoot(dir, this.opts.env);
    if (!root) {
      throw new SyncFailure('PullFailed', `${dir} is not inside a git work tree, so there is no remote to pull from; drop --interval or sync a clone`);
    }
    try {
      await pullFastForward(root, this.opts.env);
    } catch (err) {
      throw new SyncFailure('PullFailed', (err as Error).message, {}, { cause: err });
    }
  }

  private async read(dir: string, displayRoot?: string): Promise<ReadRevision> {
    let objects: ApiObject[];
    let files: ReadFileDigest[];
    try {
      ({ objects, files } = await this.deps.readManifests(dir, displayRoot === undefined ? {} : { displayRoot }));
    } catch (err) {
      throw new SyncFailure('ValidationFailed', `nothing was applied: ${(err as Error).message}`, {}, { cause: err });
    }
    const seen = new Map<string, number>();
    const dupes: string[] = [];
    objects = objects.map((o) => this.withNamespace(o));
    for (const o of objects) {
      const k = inventoryKey(refOf(o));
      seen.set(k, (seen.get(k) ?? 0) + 1);
      if (seen.get(k) === 2) dupes.push(describeRef(refOf(o)));
    }
    if (dupes.length > 0) {
      throw new SyncFailure('ValidationFailed', `nothing was applied: the directory defines ${dupes.join(', ')} more than once; keep one copy of each object`);
    }
    return { objects, files };
  }

  /** Namespaced objects without a namespace go to the GitSource's namespace (kubectl's -n rule). */
  private withNamespace(o: ApiObject): ApiObject {
    if (o.metadata.namespace || !resolveKind(o.kind)?.namespaced) return o;
    return { ...o, metadata: { ...o.metadata, namespace: this.opts.namespace } };
  }

  /** The commit checked out under dir, and whether dir has uncommitted changes (outside git: neither). */
  private async checkoutOf(dir: string): Promise<{ commit?: string; dirty: boolean }> {
    if (!(await findWorkTreeRoot(dir, this.opts.env))) return { dirty: false };
    const commit = await readHeadCommit(dir, this.opts.env);
    return { commit, dirty: commit !== undefined && (await hasUncommittedChanges(dir, this.opts.env)) };
  }

  private async applyRevision(
    source: GitSource,
    read: ApiObject[],
    revision: string,
    applied: AppliedObject[],
    pruned: InventoryEntry[],
  ): Promise<SyncOutcome> {
    const id = sourceId({ namespace: this.opts.namespace, name: this.opts.name });
    const objects = orderForApply(read.map((o) => annotateForSource(o, id)));
    const desired = objects.map(refOf);
    const inventory = source.status?.inventory ?? [];

    // The prune plan is made before any write, so that a refused (empty) revision writes nothing.
    const desiredKeys = new Set(desired.map(inventoryKey));
    const live = new Map<string, ApiObject>();
    for (const e of inventory) {
      if (desiredKeys.has(inventoryKey(e))) continue;
      const o = await this.store.tryGet(e);
      if (o) live.set(inventoryKey(e), o);
    }
    const plan = planPrune({ inventory, desired, live, sourceId: id, prune: this.opts.prune, allowEmpty: this.opts.allowEmpty });
    if (plan.refused) throw new SyncFailure(plan.reason, plan.message);

    try {
      await this.deps.applyObjects(this.store, objects, { dryRun: true });
    } catch (err) {
      throw new SyncFailure('ValidationFailed', `nothing was applied: the store refused the revision: ${(err as Error).message}`, {}, { cause: err });
    }

    const union = [...desired, ...inventory.filter((e) => !desiredKeys.has(inventoryKey(e)))];
    try {
      applied.push(...(await this.deps.applyObjects(this.store, objects, { dryRun: false })));
    } catch (err) {
      throw new SyncFailure('ApplyFailed', `applying failed, part of the revision may be applied: ${(err as Error).message}`,
        { inventory: union, applied: applied.length }, { cause: err });
    }

    for (const e of plan.delete) {
      try {
        const rv = live.get(inventoryKey(e))?.metadata.resourceVersion;
        await this.store.delete(e, rv ? { resourceVersion: rv } : {});
        pruned.push(e);
      } catch (err) {
        if (err instanceof NotFoundError) {
          pruned.push(e);
          continue;
        }
        const left = new Set(plan.delete.filter((d) => !pruned.includes(d)).map(inventoryKey));
        throw new SyncFailure('PruneFailed', `pruning ${describeRef(e)} failed: ${(err as Error).message}`, {
          inventory: [...plan.inventory, ...inventory.filter((x) => left.has(inventoryKey(x)))],
          applied: applied.length,
          pruned: pruned.length,
        }, { cause: err });
      }
    }
    return { ok: true, revision, applied: objects.length, pruned: pruned.length, inventory: plan.inventory, orphaned: plan.orphaned.length };
  }

  private recordEvent(source: GitSource, outcome: SyncOutcome, applied: AppliedObject[]): void {
    if (!this.opts.events) return;
    if (!outcome.ok) {
      const rev = outcome.revision ? `revision ${outcome.revision}: ` : '';
      this.opts.events.record(source, 'Warning', outcome.reason, truncateMessage(`${rev}${outcome.message}`, 4096));
      return;
    }
    const changed = applied.filter((a) => a.action !== 'unchanged').length;
    if (changed === 0 && outcome.pruned === 0) return;
    this.opts.events.record(source, 'Normal', 'Synced',
      `revision ${outcome.revision}: ${changed} object(s) created or configured, ${outcome.pruned} pruned`);
  }

  /**
   * Writes the status. `before` is the inventory this sync started from: entries another sync of
   * the same source (a second process) added in the meantime are kept, so that no object it applied
   * drops out of the inventory (an entry that is not really ours any more is forgotten later).
   */
  private async writeStatus(outcome: SyncOutcome, before: readonly InventoryEntry[]): Promise<GitSource> {
    const known = new Set(before.map(inventoryKey));
    for (let attempt = 0; ; attempt++) {
      const cur = await this.store.get<GitSource>(this.ref);
      const status = statusAfterSync(cur.status, outcome, cur.metadata.generation ?? 1);
      if (status.inventory) {
        const mine = new Set(status.inventory.map(inventoryKey));
        const added = (cur.status?.inventory ?? []).filter((e) => !known.has(inventoryKey(e)) && !mine.has(inventoryKey(e)));
        status.inventory = [...status.inventory, ...added];
      }
      try {
        return await this.store.updateStatus<GitSource>({ ...cur, status });
      } catch (err) {
        if (err instanceof ConflictError && attempt < STATUS_WRITE_ATTEMPTS) continue;
        throw err;
      }
    }
  }

}
