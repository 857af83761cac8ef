// The storage action executor's Volume writes (reconcilers/storage/actions.ts): one action's
// volumes are created and marked Ready in store batches over the versions the executor knows
// (no read per volume), and a volume another writer changed in between is read again and the
// change redone over it (its write kept). Real SqliteStore, qcow2 driver, local transport.

import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { Store } from '../../api/store/types.js';
import type { ApiObject, VirtualCluster, Volume } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import type { CacheReader, ReconcileContext } from '../../controllers/types.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { createStorageDriver } from '../../drivers/storage/index.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { StorageActionExecutor, type StorageEnv } from '../../reconcilers/storage/actions.js';
import { desiredVolumes, FORMAT_ANNOTATION, volumeObject, type StorageObservation } from '../../reconcilers/storage/plan.js';
import { makeTempDir } from './storage-fixtures.js';
import { storageVc } from './storage-fixtures-objects.js';

const emptyCache: CacheReader = { get: () => undefined, list: () => [] };

describe('storage actions: Volume writes in batches', function () {
  this.timeout(60_000);
  let dir: string;
  let store: SqliteStore;

  beforeEach(async () => {
    dir = await makeTempDir('vl-stact-');
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 10 });
  });
  afterEach(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The store, counting its calls by method. */
  function counted(s: Store): { store: Store; calls: Map<string, number> } {
    const calls = new Map<string, number>();
    const store = new Proxy(s, {
      get: (t, p) => {
        const v: unknown = Reflect.get(t, p, t);
        if (typeof v !== 'function') return v;
        return (...a: unknown[]) => {
          calls.set(String(p), (calls.get(String(p)) ?? 0) + 1);
          return (v as (...x: unknown[]) => unknown).apply(t, a);
        };
      },
    });
    return { store, calls };
  }

  it('creates and marks an action\'s volumes Ready in batches; a volume changed by another writer meanwhile keeps that change', async () => {
    const vc = await store.create<VirtualCluster>(storageVc('batchy', 3, 'base'));
    const { store: s, calls } = counted(store);
    const ctx = { store: s, cache: emptyCache, events: { record: () => {} }, log: silentLogger(), signal: new AbortController().signal } as ReconcileContext;
    const transport = new LocalTransport();
    const env: StorageEnv = {
      ctx, vc, transport, driver: createStorageDriver('qcow2', transport), storageRoot: join(dir, 'san'),
      vcDir: vcStorageDir(join(dir, 'san'), 'default', vc.metadata.name, vc.metadata.uid!),
    };
    const swaps = desiredVolumes(vc).filter((d) => d.role === 'swap');
    assert.equal(swaps.length, 3);
    const exec = new StorageActionExecutor(env, () => {});
    const obs = { volumes: [] as Volume[] } as unknown as StorageObservation;
    await exec.run({ type: 'createObjects', volumes: swaps.map((d) => volumeObject(vc, d)) }, obs);
    assert.equal(calls.get('batch'), 1, 'the objects made in one batch');
    assert.equal(calls.get('create') ?? 0, 0);

    // Another writer labels one volume after the executor made it: its version there is stale now.
    const name = swaps[1]!.name;
    const other = await store.get<Volume>({ kind: 'Volume', namespace: 'default', name });
    await store.update<ApiObject>({ ...other, metadata: { ...other.metadata, labels: { ...other.metadata.labels, 'example.org/other': 'kept' } } });

    calls.clear();
    await exec.run({ type: 'provision', role: 'swap', names: swaps.map((d) => d.name) }, obs);
    const vols = new Map((await store.list<Volume>('Volume', { namespace: 'default' })).items.map((v) => [v.metadata.name, v]));
    for (const d of swaps) {
      const v = vols.get(d.name)!;
      assert.equal(v.status?.phase, 'Ready', d.name);
      assert.ok(v.status?.path, `${d.name} has its path`);
      assert.equal(v.status?.format, 'raw', d.name);
      assert.equal(v.metadata.annotations?.[FORMAT_ANNOTATION], undefined, `${d.name}: its format in its status, not an annotation of its own write`);
      assert.equal(v.status?.observedGeneration, v.metadata.generation, d.name);
    }
    assert.equal(vols.get(name)!.metadata.labels?.['example.org/other'], 'kept', 'the other writer\'s label survives');
    // No read per volume: the stale one is read again after the conflict, the others never.
    assert.ok((calls.get('get') ?? 0) + (calls.get('tryGet') ?? 0) <= swaps.length, `reads: ${JSON.stringify([...calls])}`);
    assert.equal((calls.get('update') ?? 0) + (calls.get('updateStatus') ?? 0), 0, 'no write one volume at a time');
    // One write per volume to mark it Ready (its status): the status batch, and its retry after the conflict.
    assert.ok((calls.get('batch') ?? 0) <= 2, `batches: ${calls.get('batch')} (status, a retry after the conflict)`);
  });
});
