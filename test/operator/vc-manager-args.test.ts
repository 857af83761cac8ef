import assert from 'node:assert/strict';
import { parseManagerArgs } from '../../operator/vc-manager.js';

describe('vc-manager flags', () => {
  it('reads the runtime and storage settings', () => {
    const a = parseManagerArgs(['--orphan-grace', '5', '--lvm-vg', 'san'], {});
    assert.equal(a.orphanGraceSeconds, 5);
    assert.deepEqual(a.lvm, { vg: 'san' });
    const d = parseManagerArgs([], {});
    assert.equal(d.orphanGraceSeconds, 60);
    assert.equal(d.lvm, undefined);
  });
  it('refuses settings that cannot work, saying which flag', () => {
    assert.throws(() => parseManagerArgs(['--orphan-grace', '-1'], {}), /--orphan-grace -1: give seconds, at least 0/);
    assert.throws(() => parseManagerArgs(['--lvm-vg', 'san', '--lvm-thin-pool=p'], {}), /--lvm-thin-pool is no longer used: each lvm snapshot has a thin pool of its own/);
  });
  it('reads the live-migration time limit (Xen under TCG needs minutes), default unset', () => {
    assert.equal(parseManagerArgs(['--migration-timeout', '900'], {}).migrationTimeoutSeconds, 900);
    assert.equal(parseManagerArgs([], {}).migrationTimeoutSeconds, undefined);
    assert.throws(() => parseManagerArgs(['--migration-timeout', '0'], {}), /--migration-timeout 0: give whole seconds, at least 1/);
  });
  it('reads the SSH time limit (slow nodes such as full testbed nodes), default unset', () => {
    assert.equal(parseManagerArgs(['--ssh-timeout', '120'], {}).sshTimeoutSeconds, 120);
    assert.equal(parseManagerArgs([], {}).sshTimeoutSeconds, undefined);
    assert.throws(() => parseManagerArgs(['--ssh-timeout', '0'], {}), /--ssh-timeout 0: give whole seconds, at least 1/);
  });
  it('reads the memory target (default 1 GiB, 0 turns the governor off)', () => {
    assert.equal(parseManagerArgs([], {}).memoryTargetMiB, 1024);
    assert.equal(parseManagerArgs(['--memory-target-mib=2048'], {}).memoryTargetMiB, 2048);
    assert.equal(parseManagerArgs(['--memory-target-mib', '0'], {}).memoryTargetMiB, 0);
    assert.throws(() => parseManagerArgs(['--memory-target-mib', '1.5'], {}), /--memory-target-mib 1.5: give whole MiB \(0: off\)/);
  });
});
