// vc-manager as a process on the embedded store: controllers run, /metrics, /healthz and /readyz
// answer, SIGTERM exits cleanly and releases the lease.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import type { VirtualCluster } from '../../api/types.js';
import { DEFAULT_ELECTION_KEY } from '../../controllers/leader-election.js';
import { httpGet, repeatedKeys, startManager, type ManagerProcess } from '../controllers/processes.js';
import { tempSqliteStore, virtualCluster, waitFor, type TempSqliteStore } from '../controllers/helpers.js';

describe('vc-manager process on the embedded store', function () {
  this.timeout(60_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  let proc: ManagerProcess | undefined;
  before(() => {
    tmp = tempSqliteStore();
    store = tmp.store;
  });
  after(async () => {
    await proc?.kill();
    await tmp.close();
  });

  it('runs the VirtualCluster controller, serves its endpoints and stops on SIGTERM', async () => {
    proc = startManager('embedded', ['--store', `file:${tmp.path}`, '--lease-ttl', '5', '--controllers', 'virtualcluster,garbage-collector']);
    const p = proc;
    await waitFor('ready', async () => p.addr && (await httpGet(p.addr, '/readyz')).status === 200, 30_000);
    assert.equal((await httpGet(p.addr!, '/healthz')).body, 'ok\n');
    assert.match((await httpGet(p.addr!, '/readyz')).body, /ready \(leader\)/);
    await store.create(virtualCluster('emb', 2));
    await waitFor('status with 2 nodes', async () =>
      (await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'emb' })).status?.nodes?.length === 2);
    const metrics = (await httpGet(p.addr!, '/metrics')).body;
    assert.match(metrics, /vcm_workqueue_depth\{controller="virtualcluster"\} \d+/);
    assert.match(metrics, /vcm_reconcile_duration_seconds_count\{controller="virtualcluster",result="success"\} [1-9]/);
    assert.match(metrics, /vcm_store_request_duration_seconds_count\{op="create"\} [1-9]/);
    assert.match(metrics, /vcm_leader 1/);
    // Every log line is one JSON object; reconcile lines carry the object key.
    assert.ok(p.lines.every((l) => !l.raw), 'only JSON lines on stderr');
    assert.deepEqual(p.text.filter((l) => repeatedKeys(l).length > 0), [], 'no line repeats a key (identity was written twice)');
    assert.ok(p.lines.some((l) => l.msg === 'controllers started' && l.identity === 'embedded'));
    const created = p.lines.filter((l) => l.msg === 'created VirtualNode');
    assert.deepEqual(created.map((l) => [l.controller, l.key, l.virtualNode]).sort(), [
      ['virtualcluster', 'VirtualCluster default/emb', 'emb-0'],
      ['virtualcluster', 'VirtualCluster default/emb', 'emb-1'],
    ]);
    assert.ok(await store.leases.getRaw(DEFAULT_ELECTION_KEY));
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.equal(await store.leases.getRaw(DEFAULT_ELECTION_KEY), undefined, 'lease released');
  });

  it('refuses bad arguments with a usage message', async () => {
    const p = startManager('bad', ['--lease-ttl', 'soon']);
    assert.equal(await p.exited, 2);
  });
});
