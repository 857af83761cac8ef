// The memory governor (operator/memory-governor.ts): the heap growth it asks of V8 for an RSS
// against the target, with a band where it keeps what it asked (no flapping), and a governor
// that follows the RSS it reads and gives V8 its own growth back when stopped. Whether V8 then
// keeps the RSS lower is a benchmark's question (hack/bench-scale prints the peaks), not a test's.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MODERATE_GROWING_PERCENT, TIGHT_GROWING_PERCENT, growingPercentFor, startMemoryGovernor } from '../../operator/memory-governor.js';

const MiB = 2 ** 20;

describe('memory governor', () => {
  it('asks V8 for less growth as the RSS nears the target, and its own growth well below it', () => {
    const t = 1000 * MiB;
    assert.equal(growingPercentFor(400 * MiB, t, 0), 0, 'below half: V8\'s own');
    assert.equal(growingPercentFor(400 * MiB, t, TIGHT_GROWING_PERCENT), 0, 'below half: back to V8\'s own');
    assert.equal(growingPercentFor(600 * MiB, t, 0), 0, 'between half and 65 %: unchanged');
    assert.equal(growingPercentFor(600 * MiB, t, MODERATE_GROWING_PERCENT), MODERATE_GROWING_PERCENT, 'between half and 65 %: unchanged');
    assert.equal(growingPercentFor(700 * MiB, t, 0), MODERATE_GROWING_PERCENT);
    assert.equal(growingPercentFor(700 * MiB, t, TIGHT_GROWING_PERCENT), TIGHT_GROWING_PERCENT, 'coming down from tight: stays tight until half');
    assert.equal(growingPercentFor(800 * MiB, t, 0), TIGHT_GROWING_PERCENT);
    assert.equal(growingPercentFor(1500 * MiB, t, MODERATE_GROWING_PERCENT), TIGHT_GROWING_PERCENT, 'past the target: tight, never a failure');
  });

  it('follows the RSS it reads, reports each change, and gives V8 its own growth back when stopped', () => {
    let rss = 100 * MiB;
    const applied: number[] = [];
    const told: number[] = [];
    const gov = startMemoryGovernor({ targetBytes: 1000 * MiB, intervalMs: 60_000, readRss: () => rss, apply: (p) => applied.push(p), onChange: (p) => told.push(p) });
    try {
      gov.check();
      assert.equal(gov.percent, 0);
      for (const [mib, want] of [[700, MODERATE_GROWING_PERCENT], [900, TIGHT_GROWING_PERCENT], [600, TIGHT_GROWING_PERCENT], [300, 0]] as const) {
        rss = mib * MiB;
        gov.check();
        assert.equal(gov.percent, want, `at ${mib} MiB`);
      }
      assert.deepEqual(applied, [MODERATE_GROWING_PERCENT, TIGHT_GROWING_PERCENT, 0], 'V8 told only the changes');
      assert.deepEqual(told, applied);
      rss = 950 * MiB;
      gov.check();
    } finally {
      gov.stop();
    }
    assert.equal(gov.percent, 0, 'stopped: V8\'s own growth');
    assert.deepEqual(applied.slice(-2), [TIGHT_GROWING_PERCENT, 0]);
  });

  it('sets V8\'s flag in a live process without harm (a child that churns garbage through a change)', () => {
    // The flag is set after start, as the governor does; the child allocates and collects on.
    const script = `
      const { setFlagsFromString } = require('node:v8');
      let keep = [];
      for (let round = 0; round < 3; round++) {
        setFlagsFromString('--heap-growing-percent=' + [10, 30, 0][round]);
        for (let i = 0; i < 200000; i++) { keep.push({ i, s: 'x'.repeat(50) + i }); if (keep.length > 50000) keep = []; }
      }
      process.stdout.write('ok ' + keep.length);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok \d+$/);
    // V8 knows the flag (an unknown one is reported on stderr: "unrecognized flag")
    assert.equal(r.stderr, '');
  });
});
