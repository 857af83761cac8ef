// The production SyncDeps: the sync reads and applies exactly as `vcctl apply -R -f DIR` does
// (api/input for reading and validation, api/apply for the three-way merge). Nothing here
// validates or merges on its own.

import { applyObjects } from '../../api/apply/index.js';
import { loadManifests } from '../../api/input/index.js';
import type { SyncDeps } from './git-source-syncer.js';

/** Recorded by apply in the virtualinux.org/applied-by annotation of what a sync writes. */
export const SYNC_FIELD_MANAGER = 'vcctl-sync';

export function apiSyncDeps(namespace: string): SyncDeps {
  return {
    async readManifests(dir) {
      const manifests = await loadManifests([dir], { recursive: true, namespace });
      return manifests.map((m) => m.object);
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
