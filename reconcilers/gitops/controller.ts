// The gitops controller (`gitops`) of vc-manager: keeps every GitSource with spec.url in step with
// its remote repository. It runs only on the leader (every controller does), so one manager syncs
// a source at a time, and its writes are fenced: a deposed leader changes nothing.
//
// Each reconcile: fetch spec.ref into this manager's cache (git-fetcher), then one sync exactly as
// `vcctl sync` does it (GitSourceSyncer: the whole revision validated and dry-run first, dependency
// order, inventory, safe prune; the status and Events written in one place). Then again after
// spec.interval (default 1m): like `vcctl sync --interval`, every interval re-applies the commit,
// so an object changed or deleted by hand is put back (an unchanged object is not written).
// GitSources with spec.dir belong to `vcctl sync` and are left alone.
//
// A new leader starts with no memory: it fetches at once, and re-applying what the dead leader
// already wrote is a three-way merge that finds nothing to change (no write), so a sync cut short
// by a leader's death is finished, never applied twice. A commit whose sync was refused (Stalled)
// is not retried until a new commit or a spec change; a failed fetch, apply or prune is retried
// every interval. Deleting a GitSource removes its cache and leaves what it applied in place.

import { readdir, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import { apiSyncDeps } from './api-sync-deps.js';
import { checkoutSource, type Checkout } from './git-fetcher.js';
import { GitSourceSyncer } from './git-source-syncer.js';
import type { GitSource } from './sync-status.js';

export const GITOPS_CONTROLLER_NAME = 'gitops';
export const DEFAULT_INTERVAL_MS = 60_000;
const MIN_INTERVAL_MS = 1000;

export interface GitOpsControllerOptions {
  /** This manager's cache directory; one subdirectory per source (see gitopsCacheRoot). */
  cacheRoot: string;
  /** Environment for git (tests); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Per-reconcile time limit (fetch and sync); default 10 minutes. */
  timeoutMs?: number;
}

/**
 * The cache root of a manager: $VIRTUALINUX_GITOPS_CACHE, else ~/.cache/virtualinux/gitops, with
 * the manager's identity below it, so that two managers on one machine never share a git
 * directory (a killed one may leave git's lock files behind).
 */
export function gitopsCacheRoot(env: NodeJS.ProcessEnv, identity: string): string {
  const base = env.VIRTUALINUX_GITOPS_CACHE
    || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtualinux', 'gitops');
  return join(base, identity.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_');
}

/** spec.interval (the CRD's duration pattern) in ms, at least 1 s. */
export function intervalMsOf(interval: string | undefined): number {
  if (!interval) return DEFAULT_INTERVAL_MS;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of interval.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return Math.min(Math.max(total || DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS), 2 ** 31 - 1);
}

/** Whether this commit was refused for this generation for a reason the user must fix (it would be again). */
function refusedBefore(gs: GitSource, commit: string): boolean {
  const s = gs.status;
  return s?.observedGeneration === (gs.metadata.generation ?? 0) && s.fetchedRevision === commit
    && getCondition(s.conditions, 'Stalled')?.status === 'True';
}

export function gitOpsController(opts: GitOpsControllerOptions): ControllerSpec {
  /** When each source was last fetched, by this manager (a new leader starts afresh). */
  const fetched = new Map<string, { at: number; generation: number; uid: string }>();

  return {
    name: GITOPS_CONTROLLER_NAME,
    forKind: 'GitSource',
    workers: 2,
    timeoutMs: opts.timeoutMs ?? 10 * 60_000,
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const id = `${key.namespace}/${key.name}`;
      const sourceDir = join(opts.cacheRoot, key.namespace ?? '_', key.name);
      const gs = ctx.cache.get<GitSource>({ kind: 'GitSource', namespace: key.namespace, name: key.name });
      if (!gs || gs.metadata.deletionTimestamp || !gs.spec?.url) {
        fetched.delete(id);
        await rm(sourceDir, { recursive: true, force: true });
        return undefined;
      }
      const spec = gs.spec;
      const uid = gs.metadata.uid ?? 'none';
      const generation = gs.metadata.generation ?? 0;
      const intervalMs = intervalMsOf(spec.interval);
      // Our own status writes wake this key too: fetch at most once per interval per generation.
      const last = fetched.get(id);
      const since = last ? Date.now() - last.at : Infinity;
      if (last && last.uid === uid && last.generation === generation && since < intervalMs) {
        return { requeueAfterMs: intervalMs - since };
      }
      fetched.set(id, { at: Date.now(), generation, uid });
      await removeOtherCaches(sourceDir, uid);

      let checkout: Checkout | undefined;
      let fetchError: unknown;
      try {
        checkout = await checkoutSource(spec, { cacheDir: join(sourceDir, uid), env: opts.env, signal: ctx.signal });
      } catch (err) {
        fetchError = err;
      }
      if (ctx.signal.aborted) return undefined; // leadership lost or shutting down: no verdict
      if (checkout && refusedBefore(gs, checkout.commit)) return { requeueAfterMs: intervalMs };

      const syncer = new GitSourceSyncer(ctx.store, {
        dir: checkout?.dir ?? sourceDir,
        name: key.name,
        nameGiven: true,
        namespace: key.namespace ?? 'default',
        prune: spec.prune ?? false,
        allowEmpty: spec.allowEmpty ?? false,
        env: opts.env,
        events: ctx.events,
        remote: {
          checkout: async () => {
            if (!checkout) throw fetchError;
            return checkout;
          },
        },
      }, apiSyncDeps(key.namespace ?? 'default'));
      const report = await syncer.sync();
      const o = report.outcome;
      ctx.log.info(o.ok
        ? { revision: o.revision, applied: o.applied, pruned: o.pruned }
        : { revision: o.revision, reason: o.reason, err: o.message.split('\n')[0] }, o.ok ? 'synced' : 'sync failed');
      return { requeueAfterMs: intervalMs };
    },
  };
}

/** A source re-created under the same name has a new uid: the old one's cache goes. */
async function removeOtherCaches(sourceDir: string, uid: string): Promise<void> {
  const names = await readdir(sourceDir).catch(() => [] as string[]);
  for (const n of names) if (n !== uid) await rm(join(sourceDir, n), { recursive: true, force: true });
}
