import assert from 'node:assert/strict';
import { FakeClock } from '../../controllers/clock.js';
import {
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
} from '../../controllers/rate-limiter.js';
import { WorkQueue } from '../../controllers/workqueue.js';

function drainAll(q: WorkQueue<string>): string[] {
  const out: string[] = [];
  for (let k = q.tryGet(); k !== undefined; k = q.tryGet()) out.push(k);
  return out;
}

describe('WorkQueue (fake clock)', () => {
  it('deduplicates keys added before they are taken, in FIFO order', () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    assert.equal(q.len(), 3);
    assert.deepEqual(drainAll(q), ['a', 'b', 'c']);
  });

  it('never hands a processing key to a second worker; re-queues it once after done', () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    q.add('a');
    assert.equal(q.tryGet(), 'a');
    q.add('a');
    q.add('a');
    assert.equal(q.tryGet(), undefined, 'a is processing: not handed out again');
    assert.equal(q.len(), 0);
    q.done('a');
    assert.equal(q.len(), 1);
    assert.equal(q.tryGet(), 'a');
    q.done('a');
    assert.equal(q.tryGet(), undefined, 'processed exactly once more');
  });

  it('get() waits for an add and resolves waiting workers with distinct keys', async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    const w1 = q.get();
    const w2 = q.get();
    q.add('x');
    q.add('x');
    q.add('y');
    assert.deepEqual(await Promise.all([w1, w2]), ['x', 'y']);
    assert.equal(q.processingLen(), 2);
    assert.equal(q.len(), 0, 'x added while processing is held back until done');
    assert.equal(q.tryGet(), undefined);
    q.done('x');
    assert.equal(q.tryGet(), 'x');
  });

  it('addAfter delays a key on the clock and keeps the earlier of two delays', () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock });
    q.addAfter('a', 100);
    q.addAfter('a', 50);
    q.addAfter('a', 500);
    q.addAfter('b', 200);
    clock.step(49);
    assert.equal(q.len(), 0);
    assert.equal(q.delayedLen(), 2);
    clock.step(1);
    assert.deepEqual(drainAll(q), ['a']);
    clock.step(149);
    assert.equal(q.len(), 0);
    clock.step(1);
    assert.deepEqual(drainAll(q), ['b']);
    clock.step(10_000);
    assert.equal(q.len(), 0, 'the cancelled 100 and 500 ms adds never fire');
  });

  it('backs a failing key off exponentially, per key, up to the cap; forget resets it', () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock, rateLimiter: new ItemExponentialRateLimiter(5, 1000) });
    const seen: number[] = [];
    q.add('k');
    for (let i = 0; i < 10; i++) {
      const t0 = clock.now();
      assert.equal(q.tryGet(), 'k');
      q.addRateLimited('k');
      q.done('k');
      let waited = 0;
      while (q.len() === 0) {
        clock.step(1);
        waited++;
      }
      seen.push(clock.now() - t0);
      assert.ok(waited > 0);
    }
    assert.deepEqual(seen, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    assert.equal(q.numRequeues('k'), 10);
    q.forget('k');
    assert.equal(q.numRequeues('k'), 0);
    // Another key has its own history.
    q.addRateLimited('other');
    clock.step(5);
    assert.ok(drainAll(q).includes('other'));
  });

  it('the global token bucket spaces out a burst of failures across keys', () => {
    const clock = new FakeClock();
    const limiter = new MaxOfRateLimiter<string>(
      new ItemExponentialRateLimiter(1, 1000),
      new TokenBucketRateLimiter(10, 3, clock),
    );
    const q = new WorkQueue<string>({ clock, rateLimiter: limiter });
    for (let i = 0; i < 6; i++) q.addRateLimited(`k${i}`);
    clock.step(1);
    assert.equal(q.len(), 3, 'burst of 3 passes after the 1 ms per-key delay');
    clock.step(99);
    assert.equal(q.len(), 4, 'then one token every 100 ms');
    clock.step(100);
    assert.equal(q.len(), 5);
    clock.step(100);
    assert.equal(q.len(), 6);
  });

  it('shutDown releases waiting workers, drops delayed keys and refuses new ones', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock });
    const w = q.get();
    q.addAfter('later', 10);
    q.shutDown();
    assert.equal(await w, undefined);
    q.add('new');
    clock.step(100);
    assert.equal(q.len(), 0);
    assert.equal(clock.pending(), 0);
    assert.equal(await q.get(), undefined);
  });

  it('drained() resolves only after the last processing key is done', async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.tryGet();
    q.tryGet();
    q.shutDown();
    let drained = false;
    const p = q.drained().then(() => { drained = true; });
    q.done('a');
    await Promise.resolve();
    assert.equal(drained, false);
    q.done('b');
    await p;
    assert.equal(drained, true);
  });

  it('random interleavings: no key is processed concurrently and every add after a take is seen', () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock });
    const keys = ['a', 'b', 'c', 'd'];
    const inFlight = new Set<string>();
    const pendingSinceTake = new Set<string>();
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const held: string[] = [];
    for (let step = 0; step < 5000; step++) {
      const r = rnd();
      if (r < 0.4) {
        const k = keys[Math.floor(rnd() * keys.length)] as string;
        q.add(k);
        pendingSinceTake.add(k);
      } else if (r < 0.7) {
        const k = q.tryGet();
        if (k !== undefined) {
          assert.ok(!inFlight.has(k), `key ${k} handed out twice at once`);
          inFlight.add(k);
          pendingSinceTake.delete(k);
          held.push(k);
        }
      } else if (held.length > 0) {
        const k = held.splice(Math.floor(rnd() * held.length), 1)[0] as string;
        inFlight.delete(k);
        q.done(k);
      }
    }
    for (const k of held.splice(0)) q.done(k);
    // Everything added since it was last taken must still come out.
    const rest = new Set(drainAll(q));
    for (const k of pendingSinceTake) assert.ok(rest.has(k), `lost add of ${k}`);
  });
});
