// writeStatusOver (api/status-writer.ts) on the embedded store: a write computed from a stale
// version is computed again over the stored one, keeping what the other writer wrote.

import assert from 'node:assert/strict';
import { writeStatusOver } from '../../api/status-writer.js';
import type { VirtualCluster } from '../../api/types.js';
import { tempSqliteStore, virtualCluster, type TempSqliteStore } from '../controllers/helpers.js';

describe('writeStatusOver', () => {
  let tmp: TempSqliteStore;
  before(() => { tmp = tempSqliteStore(); });
  after(async () => { await tmp?.close(); });

  it('recomputes over a fresh read after a conflict, keeping the other writer\'s fields; equal status is not written', async () => {
    const store = tmp.store;
    const stale = await store.create(virtualCluster('w', 1));
    // Another writer gets there first.
    const theirs = await store.updateStatus<VirtualCluster>({ ...stale, status: { phase: 'Running' } });
    let calls = 0;
    const written = await writeStatusOver<VirtualCluster>(store, stale, (cur) => {
      calls++;
      return { ...cur.status, subnet: '10.9.0.0/29' };
    });
    assert.equal(calls, 2, 'computed once over the stale version, once over the stored one');
    assert.deepEqual(written?.status, { phase: 'Running', subnet: '10.9.0.0/29' });
    const stored = await store.get<VirtualCluster>({ kind: 'VirtualCluster', name: 'w', namespace: 'default' });
    assert.deepEqual(stored.status, { phase: 'Running', subnet: '10.9.0.0/29' });
    assert.notEqual(stored.metadata.resourceVersion, theirs.metadata.resourceVersion);
    const again = await writeStatusOver<VirtualCluster>(store, stored, (cur) => ({ ...cur.status }));
    assert.equal(again?.metadata.resourceVersion, stored.metadata.resourceVersion, 'nothing written when nothing changes');
  });
});
