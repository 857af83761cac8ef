import assert from 'node:assert/strict';
import type { MigrationProgressStatus } from '../../api/types.js';
import { progressStatus, progressWriter } from '../../reconcilers/runtime/migration-progress.js';

const sample = (transferred: number, remaining: number) => ({
  status: 'active', transferredBytes: transferred, remainingBytes: remaining, totalBytes: 1000,
  dirtyBytesPerSec: 4096 * 10, throughputBytesPerSec: 125_000, passes: 2,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('migration progress writer', () => {
  it('stores the figures QEMU reports, rounded, never negative or NaN', () => {
    const s = progressStatus({ status: 'active', transferredBytes: 10.4, remainingBytes: -1, totalBytes: NaN, passes: 3 }, Date.parse('2026-01-02T03:04:05Z'));
    assert.deepEqual(s, {
      transferredBytes: 10, remainingBytes: 0, totalBytes: 0, dirtyBytesPerSec: 0, throughputBytesPerSec: 0, passes: 3,
      sampleTime: '2026-01-02T03:04:05.000Z',
    });
  });

  it('writes the first sample at once, then at most one per interval with the newest figures, one write at a time', async () => {
    const written: MigrationProgressStatus[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const w = progressWriter(async (p) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await sleep(30);
      written.push(p);
      concurrent--;
    }, { intervalMs: 100 });
    const t0 = Date.now();
    for (let i = 1; i <= 20; i++) {
      w.sample(sample(i * 10, 1000 - i * 10));
      await sleep(10);
    }
    await sleep(150);
    const elapsed = Date.now() - t0;
    const last = await w.close();
    assert.equal(maxConcurrent, 1);
    assert.equal(written[0]!.transferredBytes, 10, 'the first sample is written at once');
    // One write at once, then at most one per interval (a loaded machine stretches the loop: count on its real length).
    const most = 1 + Math.ceil(elapsed / 100);
    assert.ok(written.length >= 2 && written.length <= most, `${written.length} writes for 20 samples over ${elapsed} ms at 100 ms intervals (at most ${most})`);
    assert.equal(written.at(-1)!.transferredBytes, 200, 'the newest sample is written last, the ones in between dropped');
    assert.equal(last?.transferredBytes, 200);
    assert.equal(last?.dirtyBytesPerSec, 40960);
  });

  it('a failed write is dropped and the next sample is written; nothing is written after close', async () => {
    let calls = 0;
    const written: number[] = [];
    const w = progressWriter(async (p) => {
      calls++;
      if (calls === 1) throw new Error('conflict');
      written.push(p.transferredBytes);
    }, { intervalMs: 20 });
    w.sample(sample(1, 9));
    await sleep(5);
    w.sample(sample(2, 8));
    await sleep(60);
    assert.deepEqual(written, [2]);
    await w.close();
    w.sample(sample(3, 7));
    await sleep(40);
    assert.deepEqual(written, [2]);
  });
});
