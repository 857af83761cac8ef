// The GitSource status a sync writes, computed in one place from the sync's outcome (Flux's
// "finalizeStatus" idea): every outcome maps to Ready/Stalled conditions with a PascalCase reason,
// lastError, counts and the inventory. Pure; table-tested.

import { setCondition } from '../../api/conditions.js';
import type { ApiObject, Condition } from '../../api/types.js';
import { nowTimestamp } from '../../api/store/object-semantics.js';
import type { InventoryEntry } from './plan-sync.js';

/**
 * A GitSource is either a work-tree directory `vcctl sync` applies (spec.dir, written by vcctl),
 * or a remote repository vc-manager's gitops controller fetches and applies (spec.url, written by
 * the user). Exactly one of dir and url is set (the CRD says so).
 */
export interface GitSourceSpec {
  dir?: string;
  /** ssh://[user@]host[:port]/path, user@host:path, https://host/path, file:///path or /path. */
  url?: string;
  /** Branch, tag or commit (full hex); default main. */
  ref?: string;
  /** The folder in the repository to apply; default the whole repository. */
  path?: string;
  prune?: boolean;
  /** With prune: let a revision with no manifests delete everything the source applied. */
  allowEmpty?: boolean;
  interval?: string;
  /** Credentials by reference: files on the machine vc-manager runs on, never key material. */
  ssh?: { identityFile?: string; knownHosts: string };
  https?: { tokenFile: string; username?: string };
}

export interface GitSourceStatus {
  /** The commit spec.ref resolved to at the last fetch (remote sources). */
  fetchedRevision?: string;
  lastAppliedRevision?: string;
  lastSyncTime?: string;
  appliedCount?: number;
  prunedCount?: number;
  inventory?: InventoryEntry[];
  lastError?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type GitSource = ApiObject<GitSourceSpec, GitSourceStatus> & { kind: 'GitSource' };

/**
 * Why a sync did not complete. Stalling reasons need the user to change the source (the same
 * revision would fail again); the others are retried by the next sync.
 */
export type SyncFailureReason =
  | 'ValidationFailed' // a manifest is invalid: nothing of the revision was applied (stalling)
  | 'EmptySource' // the directory came up empty and pruning would delete everything (stalling)
  | 'SourceUnavailable' // the directory cannot be read
  | 'PullFailed' // git pull --ff-only failed: the checked-out commit is kept
  | 'FetchFailed' // vc-manager could not fetch spec.url or resolve spec.ref: nothing applied
  | 'ApplyFailed' // the store refused a write: part of the revision may be applied
  | 'PruneFailed'; // a delete failed: the revision is applied, some pruning is left

const STALLING: ReadonlySet<SyncFailureReason> = new Set(['ValidationFailed', 'EmptySource']);

export function isStalling(reason: SyncFailureReason): boolean {
  return STALLING.has(reason);
}

export type SyncOutcome =
  | {
      ok: true;
      revision: string;
      applied: number;
      pruned: number;
      inventory: InventoryEntry[];
      /** Objects that left the directory and were kept (prune off). */
      orphaned: number;
      /** The commit fetched (remote sources). */
      fetchedRevision?: string;
    }
  | {
      ok: false;
      reason: SyncFailureReason;
      message: string;
      /** The revision that was refused or failed, when known. */
      revision?: string;
      /** The inventory after a partial apply or prune; undefined = unchanged. */
      inventory?: InventoryEntry[];
      applied?: number;
      pruned?: number;
      fetchedRevision?: string;
    };

/** The status after a sync, from the previous status and the outcome. */
export function statusAfterSync(
  prev: GitSourceStatus | undefined,
  outcome: SyncOutcome,
  generation: number,
  now: Date = new Date(),
): GitSourceStatus {
  const base: GitSourceStatus = {
    ...(prev ?? {}), lastSyncTime: nowTimestamp(now.getTime()), observedGeneration: generation,
    ...(outcome.fetchedRevision ? { fetchedRevision: outcome.fetchedRevision } : {}),
  };
  let conditions = prev?.conditions;
  if (outcome.ok) {
    const orphans = outcome.orphaned > 0
      ? `; ${outcome.orphaned} object(s) left the directory and were kept (sync with --prune to delete them)`
      : '';
    conditions = setCondition(conditions, {
      type: 'Ready', status: 'True', reason: 'Synced',
      message: `applied ${outcome.applied} object(s) of revision ${outcome.revision}, pruned ${outcome.pruned}${orphans}`,
    }, generation, now);
    conditions = setCondition(conditions, { type: 'Stalled', status: 'False', reason: 'Synced' }, generation, now);
    return {
      ...base,
      lastAppliedRevision: outcome.revision,
      appliedCount: outcome.applied,
      prunedCount: outcome.pruned,
      inventory: outcome.inventory,
      lastError: '',
      conditions,
    };
  }
  const what = outcome.revision ? `revision ${outcome.revision}: ` : '';
  const message = truncateMessage(`${what}${outcome.message}`);
  conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: outcome.reason, message }, generation, now);
  conditions = setCondition(conditions, isStalling(outcome.reason)
    ? { type: 'Stalled', status: 'True', reason: outcome.reason, message }
    : { type: 'Stalled', status: 'False', reason: 'Retrying', message: 'the next sync retries' }, generation, now);
  return {
    ...base,
    appliedCount: outcome.applied ?? 0,
    prunedCount: outcome.pruned ?? 0,
    ...(outcome.inventory ? { inventory: outcome.inventory } : {}),
    lastError: message,
    conditions,
  };
}

/** The CRD caps messages at 32768 characters; a revision with hundreds of errors is cut well below. */
export const MAX_MESSAGE_CHARS = 16_384;

export function truncateMessage(message: string, max = MAX_MESSAGE_CHARS): string {
  if (message.length <= max) return message;
  const cut = message.lastIndexOf('\n', max);
  const head = message.slice(0, cut > max / 2 ? cut : max);
  const rest = message.slice(head.length).split('\n').filter((l) => l.trim()).length;
  return `${head}\n... and ${rest} more line(s); run "vcctl apply --dry-run=client -R -f DIR" to see them all`;
}
