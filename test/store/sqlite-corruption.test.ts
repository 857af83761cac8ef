// A store file with damaged pages (SQLite: "database disk image is malformed") is fatal, as one
// that does not open: the store names the file and stops serving, vcctl says so and exits 1, and
// vc-manager refuses to start (exit 1, /healthz never ok) instead of retrying with warnings.
// The damage is real: pages of a real SQLite file overwritten with junk.

import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, StoreCorruptError } from '../../api/store/sqlite-store.js';
import type { StoreError } from '../../api/store/types.js';
import { vcctl } from '../cli/helpers.js';
import { httpGet, startManager, type ManagerProcess } from '../controllers/processes.js';
import { virtualCluster, waitFor } from '../controllers/helpers.js';

const PAGE = 4096;

/** A store with 2,000 VirtualClusters (a few hundred pages), closed (the WAL checkpointed). */
async function filledStore(path: string): Promise<void> {
  const s = new SqliteStore(path);
  for (let i = 0; i < 20; i++) {
    await s.batch(Array.from({ length: 100 }, (_v, j) => ({ op: 'create' as const, object: virtualCluster(`vc-${i}-${j}`, 1) })));
  }
  await s.close();
}

/** Overwrites pages [first, first+count) (0-based) with junk: b-tree pages of the objects table. */
function damage(path: string, first = 10, count = 3): void {
  const fd = openSync(path, 'r+');
  try {
    const junk = Buffer.alloc(PAGE * count, 0xa5);
    writeSync(fd, junk, 0, junk.length, PAGE * first);
  } finally {
    closeSync(fd);
  }
}

/**
 * While other processes have the file open: checkpoints the WAL into the file (so the file holds
 * the newest pages) and overwrites the pages of the tables and indexes named with junk.
 */
function damageLive(path: string, names: string[]): number[] {
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 10000');
    const rows = db.prepare('SELECT name, rootpage FROM sqlite_master WHERE tbl_name IN (SELECT value FROM json_each(?))').all(JSON.stringify(names)) as { name: string; rootpage: number }[];
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pages = rows.map((r) => r.rootpage);
    for (const p of pages) damage(path, p - 1, 1);
    return pages;
  } finally {
    db.close();
  }
}

describe('SqliteStore on a damaged file', function () {
  this.timeout(60_000);
  let dir: string;
  let path: string;
  let proc: ManagerProcess | undefined;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-corrupt-'));
    path = join(dir, 'store.db');
    await filledStore(path);
    damage(path);
  });
  afterEach(async () => {
    await proc?.kill();
    proc = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('the first read of a damaged page stops the store: an error naming the file, every later call fails, onFatal once', async () => {
    const store = new SqliteStore(path); // opens: the damage is in pages not read at open
    const fatal: StoreError[] = [];
    store.onFatal((e) => fatal.push(e));
    try {
      const err = await store.list('VirtualCluster').then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof StoreCorruptError, `expected StoreCorruptError, got ${String(err)}`);
      assert.match(err.message, new RegExp(`^the embedded store ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(database disk image is malformed\\): stop every vc-manager and vcctl using it and restore the file from a backup`));
      // What still reads fine is not served any more: the store is stopped, not flaky.
      await assert.rejects(store.revision(), (e: unknown) => e === err);
      await assert.rejects(store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'vc-19-99' }), (e: unknown) => e === err);
      await assert.rejects(store.create(virtualCluster('new', 1)), (e: unknown) => e === err);
      assert.deepEqual(fatal, [err]);
      const late: StoreError[] = [];
      store.onFatal((e) => late.push(e));
      assert.deepEqual(late, [err], 'a listener registered afterwards hears it at once');
    } finally {
      await store.close();
    }
  });

  it('checkIntegrity finds the damage before anything reads it; an intact file passes', async () => {
    const store = new SqliteStore(path);
    try {
      assert.throws(() => store.checkIntegrity(), StoreCorruptError);
    } finally {
      await store.close();
    }
    const good = join(dir, 'good.db');
    await filledStore(good);
    const ok = new SqliteStore(good);
    try {
      ok.checkIntegrity();
      assert.equal((await ok.list('VirtualCluster')).items.length, 2000);
    } finally {
      await ok.close();
    }
  });

  it('vcctl: get on the damaged file prints the error naming the file and exits 1', async () => {
    const r = await vcctl(`file:${path}`, ['get', 'vc']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^error: the embedded store ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(database disk image is malformed\\)`));
  });

  it('vc-manager on the damaged file exits non-zero at once, logging the path, and never reports healthy', async () => {
    proc = startManager('damaged', ['--store', `file:${path}`, '--lease-ttl', '5', '--controllers', 'virtualcluster', '--ui-addr', 'off']);
    const code = await Promise.race([proc.exited, new Promise<string>((r) => setTimeout(() => r('still running after 30 s'), 30_000))]);
    assert.equal(code, 1);
    const failed = proc.lines.find((l) => l.level === 'error');
    assert.ok(failed, `an error line: ${proc.text.join('\n')}`);
    assert.equal(failed.msg, 'cannot open the store');
    assert.match(String(failed.err), new RegExp(`the embedded store ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged`));
    assert.equal(proc.addr, undefined, 'it never served /healthz');
  });

  it('vc-manager running when its store file is damaged: /healthz not ok, the path logged, exit 1', async () => {
    const fresh = join(dir, 'live.db');
    proc = startManager('live', ['--store', `file:${fresh}`, '--lease-ttl', '5', '--controllers', 'virtualcluster', '--ui-addr', 'off']);
    const p = proc;
    await waitFor('ready', async () => p.addr && (await httpGet(p.addr, '/readyz')).status === 200, 30_000);
    assert.equal((await httpGet(p.addr!, '/healthz')).body, 'ok\n');
    // The election key's table goes bad; the leader's fenced writes read it.
    const pages = damageLive(fresh, ['raw']);
    assert.ok(pages.length >= 1);
    const store = new SqliteStore(fresh);
    try {
      await store.create(virtualCluster('trigger', 1)); // a change the manager reconciles (and reads the fence for)
    } finally {
      await store.close();
    }
    const health: string[] = [];
    let polling = true;
    const code = await Promise.race([
      p.exited,
      (async () => {
        while (polling) {
          const h = await httpGet(p.addr!, '/healthz').catch(() => undefined);
          if (h && h.status !== 200) health.push(`${h.status} ${h.body}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      new Promise<string>((r) => setTimeout(() => r('still running after 30 s'), 30_000)),
    ]);
    polling = false;
    assert.equal(code, 1, p.text.join('\n'));
    const failed = p.lines.find((l) => l.msg === 'the store failed for good: exiting');
    assert.ok(failed, p.text.join('\n'));
    assert.match(String(failed.err), new RegExp(`the embedded store ${fresh.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(database disk image is malformed\\)`));
    assert.ok(!p.lines.some((l) => l.msg === 'vc-manager started' && Number(l.at) > Number(failed.at)));
    if (health.length > 0) assert.match(health[0], /^503 not ok: the embedded store .* is damaged/);
  });
});
