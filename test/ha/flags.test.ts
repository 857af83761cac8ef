// vc-manager's high-availability flags and their wiring into the controllers.
import assert from 'node:assert/strict';
import { parseManagerArgs } from '../../operator/vc-manager.js';

describe('vc-manager --node-failure-grace and --node-probe-interval', () => {
  it('default to 30 s grace and the node controller default interval', () => {
    const a = parseManagerArgs([], {});
    assert.equal(a.nodeFailureGraceSeconds, 30);
    assert.equal(a.nodeProbeIntervalSeconds, undefined);
  });
  it('take seconds', () => {
    const a = parseManagerArgs(['--node-failure-grace', '10', '--node-probe-interval=2.5'], {});
    assert.equal(a.nodeFailureGraceSeconds, 10);
    assert.equal(a.nodeProbeIntervalSeconds, 2.5);
  });
  it('refuse what is not a positive number, naming the flag', () => {
    assert.throws(() => parseManagerArgs(['--node-failure-grace', '0'], {}), /--node-failure-grace 0: give seconds, more than 0/);
    assert.throws(() => parseManagerArgs(['--node-probe-interval', 'soon'], {}), /--node-probe-interval soon/);
  });
});
