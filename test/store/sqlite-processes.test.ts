// The embedded store used by several processes at once, as vcctl and vc-manager do: concurrent
// writers from separate OS processes serialise on SQLite's write lock, every write gets its own
// revision, and a watch in this process sees the other processes' writes in revision order.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject } from '../../api/types.js';
import { collect, waitFor } from '../conformance/store-conformance.js';

const writer = `
  import { SqliteStore } from './api/store/sqlite-store.ts';
  const [path, who, n] = process.argv.slice(1);
  const s = new SqliteStore(path);
  for (let i = 0; i < Number(n); i++) {
    await s.create({ apiVersion: 'v1', kind: 'Widget', metadata: { name: who + '-' + i, namespace: 'default' } });
  }
  // Contended unconditional updates of one shared object: none may be lost.
  for (let i = 0; i < 20; i++) {
    for (;;) {
      const o = await s.get({ kind: 'Counter', name: 'c' });
      try { await s.update({ ...o, spec: { n: o.spec.n + 1 } }); break; } catch (e) { if (e.name !== 'ConflictError') throw e; }
    }
  }
  await s.close();`;

function runWriter(path: string, who: string, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', writer, path, who, String(n)], {
      cwd: process.cwd(), stdio: ['ignore', 'inherit', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${who} exited ${code}: ${err}`))));
  });
}

describe('SqliteStore shared by several processes', () => {
  let dir: string;
  let store: SqliteStore | undefined;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-procs-')); });
  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serialises concurrent writers, loses no update and streams their writes to a watcher', async function () {
    this.timeout(60_000);
    const path = join(dir, 'store.db');
    store = new SqliteStore(path);
    await store.create({ apiVersion: 'v1', kind: 'Counter', metadata: { name: 'c' }, spec: { n: 0 } });
    const start = await store.revision();
    const w = collect(store, 'Widget', start + 1);
    await Promise.all([runWriter(path, 'a', 150), runWriter(path, 'b', 150), runWriter(path, 'c', 150)]);
    const list = await store.list('Widget');
    assert.equal(list.items.length, 450);
    const revs = list.items.map((o) => Number(o.metadata.resourceVersion));
    assert.equal(new Set(revs).size, 450, 'every write has its own revision');
    const counter = await store.get<ApiObject<{ n: number }>>({ kind: 'Counter', name: 'c' });
    assert.equal(counter.spec?.n, 60, 'no lost update');
    assert.equal(counter.metadata.generation, 61);
    assert.equal(list.revision, start + 450 + 60);
    await waitFor('450 events', () => w.events.length === 450, 20_000);
    const evRevs = w.events.map((e) => e.revision);
    assert.deepEqual(evRevs, [...evRevs].sort((x, y) => x - y));
    assert.deepEqual(w.events.map((e) => e.type), Array(450).fill('ADDED'));
    // Each writer's own objects arrive in the order it wrote them.
    for (const who of ['a', 'b', 'c']) {
      const mine = w.events.map((e) => e.object.metadata.name).filter((n) => n.startsWith(`${who}-`));
      assert.deepEqual(mine, Array.from({ length: 150 }, (_v, i) => `${who}-${i}`));
    }
    w.watch.close();
  });
});
