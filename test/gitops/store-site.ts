// Where the GitOps tests keep their objects: the embedded store (a file per test, the default), or
// with VL_E2E_STORE=etcd-cluster a 3-member etcd cluster (hack/etcd-cluster: TLS, client
// certificates, etcd auth, a network namespace per member; needs root), made once per test file,
// with a key prefix of its own per test. test/gitops/gitops.etcd-cluster.test.ts runs the GitOps
// tests that use it once on the cluster, as test/e2e/etcd-cluster.e2e.test.ts does for the
// runtime and network ones.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { Store } from '../../api/store/types.js';
import { etcdClusterDown, etcdClusterUp } from '../../hack/lib/etcd-cluster.js';

export interface StoreSite {
  readonly kind: 'embedded' | 'etcd-cluster';
  /** A fresh, empty store (a file under `dir`, or a key prefix of its own) and its URL for vcctl and vc-manager. */
  open(dir: string): Promise<{ store: Store; url: string }>;
  /** Removes the cluster (the embedded stores' files belong to the caller's `dir`). */
  close(): Promise<void>;
}

export async function storeSite(): Promise<StoreSite> {
  if (process.env.VL_E2E_STORE !== 'etcd-cluster') {
    return {
      kind: 'embedded',
      open: async (dir) => {
        const path = join(dir, 'store.db');
        return { store: new SqliteStore(path, { pollIntervalMs: 10 }), url: `file:${path}` };
      },
      close: async () => {},
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'vl-gitops-etcd-'));
  try {
    const s = await etcdClusterUp({ dir, members: 3 });
    const base = readFileSync(s.storeUrlFile, 'utf8').trim();
    process.stdout.write(`      store: a 3-member etcd cluster (TLS, client certificates, a network namespace per member) under ${dir}\n`);
    return {
      kind: 'etcd-cluster',
      open: async () => {
        const url = `${base}${base.includes('?') ? '&' : '?'}prefix=/gitops-${randomBytes(4).toString('hex')}`;
        return { store: await openStore(url), url };
      },
      close: async () => {
        await etcdClusterDown(dir);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await etcdClusterDown(dir).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
