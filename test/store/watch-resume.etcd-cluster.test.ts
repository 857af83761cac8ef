// A watch that breaks while it is still catching up on history resumes after the last event it
// delivered, on a real 3-member etcd cluster. The etcd3 client moves its resume point to the
// header revision of every response, which for a watch replaying history is ahead of the events
// still to come: a break during the replay lost them for good (an all-members restart right after
// 15 creates once left vc-manager's cache without those 15 VirtualClusters, for ever).
//
// The replay here is 2,500 single-object revisions; etcd sends at most 1,000 revisions per
// response, and HTTP/2 flow control keeps it from sending far ahead of what the client has read.
// Every member is SIGKILLed from inside the handler of the first event delivered, so the replay
// cannot have finished; the members are started again and every event must arrive exactly once.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../api/store/types.js';
import {
  etcdClusterDown, etcdClusterUp, startMember, stopMember, waitHealthy, readEtcdCluster, type EtcdClusterState,
} from '../../hack/lib/etcd-cluster.js';
import { openTestStore, virtualCluster, waitFor } from '../controllers/helpers.js';

const N = 2500;

describe('etcd store watch on a 3-member cluster: a break during the replay of history', function () {
  this.timeout(300_000);
  let dir: string;
  let s: EtcdClusterState;
  let store: Store | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-ec-watch-'));
    s = await etcdClusterUp({ dir, members: 3 });
    store = await openTestStore(readFileSync(s.storeUrlFile, 'utf8').trim());
  });
  after(async () => {
    await store?.close();
    if (dir) await etcdClusterDown(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('every member killed after the first replayed event: the watch resumes after it and delivers every event once', async () => {
    const st = store!;
    const from = (await st.revision()) + 1;
    const pad = 'x'.repeat(1500);
    // One object per revision: a batch puts all its events in one revision, which etcd never splits.
    for (let i = 0; i < N; i++) {
      const vc = virtualCluster(`w${i}`, 1);
      await st.create({ ...vc, metadata: { ...vc.metadata, annotations: { pad } } });
    }
    const last = await st.revision();
    assert.ok(last - from + 1 >= N, `${N} revisions written`);

    const seen = new Map<string, number>();
    let killedAfter = -1;
    const errors: Error[] = [];
    const w = st.watch('VirtualCluster', { fromRevision: from }, {
      onEvent: (ev) => {
        if (killedAfter < 0) {
          // Synchronously, before the client reads the rest of the replay.
          killedAfter = seen.size;
          for (const m of s.members) if (m.pid) process.kill(m.pid, 'SIGKILL');
        }
        seen.set(ev.object.metadata.name, (seen.get(ev.object.metadata.name) ?? 0) + 1);
      },
      onError: (err) => errors.push(err),
    });
    try {
      await waitFor('the first event', () => killedAfter >= 0, 30_000);
      for (const m of s.members) await stopMember(dir, m.name); // records them as down
      const deliveredBeforeRestart = seen.size;
      for (const m of s.members) await startMember(dir, m.name, false);
      await waitHealthy(await readEtcdCluster(dir), 60_000);
      // Waited for, then asserted: a watch that lost the rest of the replay fails on the count.
      await waitFor(`all ${N} events`, () => seen.size >= N || errors.length > 0, 60_000, 100).catch(() => undefined);
      console.log(`      killed every member at the first event; ${deliveredBeforeRestart} of ${N} delivered before the restart, ${seen.size} after`);
      assert.deepEqual(errors.map((e) => e.message), [], 'the watch did not end');
      assert.ok(deliveredBeforeRestart < N, 'the break came during the replay (else this test proves nothing)');
      assert.equal(seen.size, N, 'every object seen');
      const twice = [...seen].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], 'no event delivered twice');
    } finally {
      w.close();
    }
  });
});
