// The embedded store and values that are not JSON objects, written around it (here: another
// process's SQLite connection on the same file, as the sqlite3 shell would): a list and a watch
// skip them and report each with the object it is stored as (kind, namespace/name, file) through
// onUndecodable, and go on; a get of such an object fails naming it; its deletion is delivered.
// The same contract the etcd store keeps for `etcdctl put` (test/controllers/admission.etcd.test.ts).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { UndecodableError } from '../../api/store/object-semantics.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { Watch, WatchEvent } from '../../api/store/types.js';
import type { VirtualCluster } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { virtualCluster, waitFor } from '../controllers/helpers.js';

/** Writes `value` as the VirtualCluster ns/name at a new revision, as a foreign writer would. */
function foreignWrite(path: string, type: 'ADDED' | 'DELETED', namespace: string, name: string, value: string): number {
  const db = new Database(path);
  try {
    return db.transaction(() => {
      const rev = (db.prepare(`SELECT v FROM meta WHERE k = 'revision'`).get() as { v: number }).v + 1;
      db.prepare(`UPDATE meta SET v = ? WHERE k = 'revision'`).run(rev);
      if (type === 'ADDED') {
        db.prepare(`INSERT INTO objects (kind, namespace, name, value, create_rev, mod_rev) VALUES ('VirtualCluster', ?, ?, ?, ?, ?)`)
          .run(namespace, name, value, rev, rev);
      } else {
        db.prepare(`DELETE FROM objects WHERE kind = 'VirtualCluster' AND namespace = ? AND name = ?`).run(namespace, name);
      }
      db.prepare(`INSERT INTO changes (revision, seq, type, kind, namespace, name, value, at) VALUES (?, 0, ?, 'VirtualCluster', ?, ?, ?, ?)`)
        .run(rev, type, namespace, name, value, Date.now());
      return rev;
    }).immediate();
  } finally {
    db.close();
  }
}

describe('SqliteStore: values that are not JSON objects are skipped and reported with their key', function () {
  this.timeout(30_000);
  let dir: string;
  let path: string;
  let store: SqliteStore;
  let watch: Watch | undefined;
  const skipped: string[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-sqlite-undecodable-'));
    path = join(dir, 'store.db');
    store = new SqliteStore(path, { pollIntervalMs: 10 });
    skipped.length = 0;
    store.onUndecodable = (err) => skipped.push(err.message);
  });
  afterEach(async () => {
    watch?.close();
    watch = undefined;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('list and watch skip and report them, a get names them, the deletion is delivered', async () => {
    await store.create(virtualCluster('before', 1, 'u'));
    const events: WatchEvent<VirtualCluster>[] = [];
    let watchError: Error | undefined;
    watch = store.watch<VirtualCluster>('VirtualCluster', { namespace: 'u', fromRevision: (await store.revision()) + 1 }, {
      onEvent: (ev) => events.push(ev),
      onError: (err) => (watchError = err),
    });
    const garbageRev = foreignWrite(path, 'ADDED', 'u', 'garbage', '\x01\x02not json{');
    const numberRev = foreignWrite(path, 'ADDED', 'u', 'number', '42');
    await store.create(virtualCluster('after', 1, 'u'));

    // The watch went past both values to the write after them, and is still open.
    await waitFor('the watch delivers "after"', async () => events.some((e) => e.object.metadata.name === 'after'), 10_000);
    assert.equal(watchError, undefined);
    assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED after']);
    assert.ok(skipped.includes(`VirtualCluster u/garbage in ${path} at revision ${garbageRev} is not JSON (${jsonError('\x01\x02not json{')}); fix or delete it`), skipped.join('\n'));
    assert.ok(skipped.some((m) => m.startsWith(`VirtualCluster u/number in ${path} at revision ${numberRev} is not an object`)), skipped.join('\n'));

    // A list skips them and reports them too.
    skipped.length = 0;
    const listed = await store.list<VirtualCluster>('VirtualCluster', { namespace: 'u' });
    assert.deepEqual(listed.items.map((v) => v.metadata.name).sort(), ['after', 'before']);
    assert.equal((await store.list('VirtualCluster')).items.length, 2);
    assert.equal(skipped.filter((m) => m.startsWith(`VirtualCluster u/garbage in ${path}`)).length, 2, skipped.join('\n'));
    assert.equal(skipped.filter((m) => m.startsWith(`VirtualCluster u/number in ${path}`)).length, 2, skipped.join('\n'));

    // A get of one of them fails and says which; so does a write over it (nothing is changed).
    await assert.rejects(store.get({ kind: 'VirtualCluster', namespace: 'u', name: 'garbage' }),
      (err: Error) => err instanceof UndecodableError && err.message.startsWith(`VirtualCluster u/garbage in ${path} at revision ${garbageRev} is not JSON`));
    const head = await store.revision();
    await assert.rejects(store.update(virtualCluster('garbage', 2, 'u')), /VirtualCluster u\/garbage in .* is not JSON/);
    assert.equal(await store.revision(), head);

    // Deleting it (the fix) reaches the watch as a DELETED event naming the object.
    const delRev = foreignWrite(path, 'DELETED', 'u', 'garbage', '\x01\x02not json{');
    await waitFor('the watch delivers the deletion', async () => events.some((e) => e.type === 'DELETED'), 10_000);
    const del = events.find((e) => e.type === 'DELETED')!;
    assert.deepEqual({ kind: del.object.kind, ...del.object.metadata, revision: del.revision },
      { kind: 'VirtualCluster', name: 'garbage', namespace: 'u', resourceVersion: String(delRev), revision: delRev });
    assert.equal(watchError, undefined);
  });

  it('a controller manager syncs over them and keeps reconciling', async () => {
    foreignWrite(path, 'ADDED', 'u', 'garbage', 'not json');
    await store.create(virtualCluster('ok', 2, 'u'));
    const manager = new ControllerManager({
      store, identity: 'undecodable', leaderElection: false, eventCleanupMs: 0, specs: () => [virtualClusterController()],
    });
    await manager.start();
    try {
      await manager.cache.waitForSync();
      assert.deepEqual(manager.cache.list<VirtualCluster>('VirtualCluster').map((v) => v.metadata.name), ['ok']);
      await waitFor('the VirtualCluster controller made the VMs of "ok"', async () =>
        (await store.list('VirtualNode', { namespace: 'u' })).items.length === 2, 15_000);
      // A VC created after the garbage is reconciled as well (the watch did not stop at it).
      foreignWrite(path, 'ADDED', 'u', 'garbage2', '[1, 2');
      await store.create(virtualCluster('later', 1, 'u'));
      await waitFor('the VirtualCluster controller made the VM of "later"', async () =>
        (await store.list('VirtualNode', { namespace: 'u' })).items.length === 3, 15_000);
      assert.ok(skipped.some((m) => m.startsWith(`VirtualCluster u/garbage2 in ${path}`)), skipped.join('\n'));
    } finally {
      await manager.stop();
    }
  });
});

/** The message JSON.parse gives for `text` on this Node. */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`${text} is JSON`);
}
