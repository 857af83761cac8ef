import assert from 'node:assert/strict';
import { SyncScheduler } from '../../reconcilers/gitops/sync-scheduler.js';

/** A sync whose runs are released one by one by the test. */
function gatedRun() {
  let started = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const releases: (() => void)[] = [];
  const run = async () => {
    started++;
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    await new Promise<void>((r) => releases.push(r));
    concurrent--;
  };
  return {
    run,
    get started() { return started; },
    get maxConcurrent() { return maxConcurrent; },
    async release() {
      while (releases.length === 0) await tick();
      releases.shift()!();
      await tick();
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 2));

describe('gitops SyncScheduler', () => {
  it('debounces a burst of requests into one sync', async () => {
    const g = gatedRun();
    const s = new SyncScheduler({ debounceMs: 30, run: g.run });
    for (let i = 0; i < 10; i++) s.request();
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(g.started, 1);
    await g.release();
    await s.idle();
    assert.equal(g.started, 1);
    await s.close();
  });

  it('runs one sync at a time; requests during a sync lead to exactly one more', async () => {
    const g = gatedRun();
    const s = new SyncScheduler({ debounceMs: 0, run: g.run });
    s.requestNow();
    await tick();
    assert.equal(g.started, 1);
    for (let i = 0; i < 5; i++) s.requestNow();
    await tick();
    assert.equal(g.started, 1, 'no second sync while the first runs');
    await g.release();
    assert.equal(g.started, 2, 'exactly one more sync after it');
    await g.release();
    await s.idle();
    assert.equal(g.started, 2);
    assert.equal(g.maxConcurrent, 1);
    await s.close();
  });

  it('keeps running after a failed sync and reports the error', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const s = new SyncScheduler({
      debounceMs: 0,
      run: async () => {
        n++;
        if (n === 1) throw new Error('boom');
      },
      onError: (e) => errors.push(e),
    });
    s.requestNow();
    await s.idle();
    s.requestNow();
    await s.idle();
    assert.equal(n, 2);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /boom/);
    await s.close();
  });

  it('close waits for the running sync and drops what is pending', async () => {
    const g = gatedRun();
    const s = new SyncScheduler({ debounceMs: 0, run: g.run });
    s.requestNow();
    await tick();
    s.requestNow();
    const closing = s.close();
    await g.release();
    await closing;
    s.request();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(g.started, 1);
  });
});
