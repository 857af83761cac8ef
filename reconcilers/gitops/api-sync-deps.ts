// The production SyncDeps: the sync reads and applies exactly as `vcctl apply -R -f DIR` does
// (api/input for reading and validation, api/apply for the three-way merge). Nothing here
// validates or merges on its own.

import { applyObjects } from '../../api/apply/index.js';
import { loadManifests } from '../../api/input/index.js';
import type { SyncDeps } from './git-source-syncer.js';
import { digestOf, type ReadFileDigest } from './git-work-tree.js';

/** Recorded by apply in the virtualinux.org/applied-by annotation of what a sync writes. */
export const SYNC_FIELD_MANAGER = 'vcctl-sync';

export function apiSyncDeps(namespace: string): SyncDeps {
  return {
    async readManifests(dir, opts = {}) {
      const files: ReadFileDigest[] = [];
      const prefix = Buffer.from(`${dir}/`);
      const manifests = await loadManifests([dir], {
        recursive: true, namespace, confine: true, displayRoot: opts.displayRoot,
        onRead: (f, bytes) => files.push(digestOf(Buffer.from(f.path).subarray(prefix.length), bytes)),
      });
      return { objects: manifests.map((m) => m.object), files };
    },
    async applyObjects(store, objects, opts) {
      const results = await applyObjects(store, objects, {
        fieldManager: SYNC_FIELD_MANAGER,
        ...(opts.dryRun ? { dryRun: 'server' as const } : {}),
      });
      return results.map((r) => ({ ref: r.ref, action: r.action }));
    },
  };
}
