// network/hosts' paced refresh of the nodes a change concerns only remotely (RemoteRefresh,
// reconcilers/network/controller.ts): each node behind the latest change is queued once, one at a
// time, waiting twice its reconcile time before the next; a node planned meanwhile (queued
// directly by the change) is skipped; nothing is queued while every node is up to date.

import assert from 'node:assert/strict';
import { DRIFT_CHECK_FACTOR, DRIFT_CHECK_LANES, DRIFT_CHECK_MS_PER_NODE, REBUILD_MS_PER_VM, RebuildPace, RemoteRefresh, driftCheckDelayMs, refreshPaceMs } from '../../reconcilers/network/controller.js';

const until = async (cond: () => boolean, what: string, ms = 5_000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('network/hosts: paced refresh of other nodes', () => {
  it('queues each node behind the latest change once, skips one planned meanwhile, and paces by reconcile time', async () => {
    const r = new RemoteRefresh();
    const nodes = ['n1', 'n2', 'n3'];
    const queued: { name: string; at: number }[] = [];
    let took = 0;
    const stop = r.source(() => nodes)((ref) => {
      queued.push({ name: ref.name, at: performance.now() });
      const at = r.current;
      setTimeout(() => r.planned(ref.name, at, took), 1);
    });
    try {
      // Never planned: every node is behind at first.
      await until(() => queued.length === 3, 'the first round');
      assert.deepEqual(queued.map((q) => q.name), ['n1', 'n2', 'n3']);
      await new Promise((res) => setTimeout(res, 100));
      assert.equal(queued.length, 3, 'nothing queued while every node is up to date');

      // A change; n2 is planned directly (its own VM moved) before the refresh reaches it.
      took = 40;
      r.stale();
      r.planned('n2', r.current, 1);
      await until(() => queued.length === 5, 'the second round');
      assert.deepEqual(queued.slice(3).map((q) => q.name), ['n1', 'n3'], 'n2 was planned meanwhile: skipped');
      const gap = queued[4]!.at - queued[3]!.at;
      assert.ok(gap >= 2 * 40 - 5, `waited twice the reconcile time before the next node (gap ${gap.toFixed(0)} ms)`);
      await new Promise((res) => setTimeout(res, 150));
      assert.equal(queued.length, 5, 'up to date again: nothing more');
    } finally {
      stop();
    }
  });

  it('forgets a node deleted while queued: it is not queued again', async () => {
    const r = new RemoteRefresh();
    const nodes = ['a', 'b'];
    const queued: string[] = [];
    const stop = r.source(() => nodes)((ref) => {
      queued.push(ref.name);
      // a is deleted while queued; b is planned
      setTimeout(() => (ref.name === 'a' ? (nodes.splice(0, 1), r.forget('a')) : r.planned('b', r.current, 0)), 1);
    });
    try {
      await until(() => queued.length >= 2, 'both queued');
      await new Promise((res) => setTimeout(res, 100));
      assert.deepEqual(queued, ['a', 'b'], 'a deleted node is not queued again');
    } finally {
      stop();
    }
  });
});

describe('network/hosts: drift checks of unchanged nodes', () => {
  it('are every resyncMs on a few nodes, and spread so that checking every node takes at most 1/DRIFT_CHECK_FACTOR of DRIFT_CHECK_LANES', () => {
    assert.equal(driftCheckDelayMs(30_000, 3, 150), 30_000);
    // 1,000 nodes at 200 ms each over 2 lanes: all checks take 100 s of them, so a node is
    // checked every 100 s x DRIFT_CHECK_FACTOR.
    assert.equal(DRIFT_CHECK_LANES, 2);
    const d = driftCheckDelayMs(30_000, 1_000, 200);
    assert.equal(d, 100_000 * DRIFT_CHECK_FACTOR);
    assert.ok((1_000 * 200) / DRIFT_CHECK_LANES / d <= 1 / DRIFT_CHECK_FACTOR);
  });
  it('grow with the nodes before anything is measured, and not shorter with more workers (16 workers made them 8 times as frequent: bench-scale 10,000)', () => {
    // nothing measured yet: DRIFT_CHECK_MS_PER_NODE per node (the old code: 30 s for any count)
    assert.equal(driftCheckDelayMs(30_000, 1_000, 0), 1_000 * DRIFT_CHECK_MS_PER_NODE);
    assert.ok(driftCheckDelayMs(30_000, 1_000, 0) >= 100_000);
    assert.equal(driftCheckDelayMs(30_000, 100, 0), 30_000);
    // the workers are no input: a fourth argument (the old signature's workers) changes nothing
    const withWorkers = driftCheckDelayMs as unknown as (r: number, n: number, m: number, w: number) => number;
    assert.equal(withWorkers(30_000, 1_000, 200, 16), driftCheckDelayMs(30_000, 1_000, 200));
  });
});

describe('network/hosts: the paced refresh after a node sent no commands', () => {
  it('waits as after a mean applying reconcile, not after the skip\'s few milliseconds', () => {
    assert.equal(refreshPaceMs(3, true, 250), 250);
    assert.equal(refreshPaceMs(400, true, 250), 400);
    assert.equal(refreshPaceMs(3, false, 250), 3, 'an apply counts for its own time');
    assert.equal(refreshPaceMs(3, true, 0), 3, 'nothing measured yet');
  });
});

describe('network/hosts: the pace of the VMs\' networks\' rebuilds', () => {
  it('lets the first rebuild go at once, then spaces them by twice the last one\'s duration after its end', () => {
    let t = 1_000;
    const pace = new RebuildPace(2, () => t);
    assert.equal(pace.delayMs(), 0, 'nothing rebuilt yet');
    const started = t;
    t += 80; // a rebuild of 80 ms
    pace.rebuilt(started);
    assert.equal(pace.delayMs(), 160, 'right after it: 2 x 80 ms');
    t += 100;
    assert.equal(pace.delayMs(), 60);
    t += 60;
    assert.equal(pace.delayMs(), 0, 'spaced enough');
    t += 500;
    const s2 = t;
    t += 5; // a cheap one shortens the next wait
    pace.rebuilt(s2);
    assert.equal(pace.delayMs(), 10);
  });

  it('spaces rebuilds of many VMs by at least REBUILD_MS_PER_VM each, however fast they were', () => {
    let t = 0;
    const pace = new RebuildPace(2, () => t, 0.1);
    t += 70; // 10,000 VMs rebuilt in 70 ms: 1 s, not 140 ms
    pace.rebuilt(0, 10_000);
    assert.equal(pace.delayMs(), 1_000);
    t += 999;
    assert.equal(pace.delayMs(), 1);
    t += 1;
    assert.equal(pace.delayMs(), 0);
    const s2 = t;
    t += 30; // a few VMs: their duration paces them
    pace.rebuilt(s2, 100);
    assert.equal(pace.delayMs(), 60);
    assert.equal(REBUILD_MS_PER_VM, 0.1, 'the manager\'s floor: 1 s at 10,000 VMs');
  });
});
