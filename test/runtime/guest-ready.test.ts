import assert from 'node:assert/strict';
import type { Condition } from '../../api/types.js';
import { bootTimeoutMs, decideGuestReady, DEFAULT_BOOT_TIMEOUT_MS, shouldProbeGuest, type GuestReadyInput } from '../../reconcilers/runtime/guest-ready.js';

const cond = (status: Condition['status'], reason: string): Condition =>
  ({ type: 'GuestReady', status, reason, message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 });
const base: GuestReadyInput = { phase: 'Running', booted: false, previous: undefined, bootTimeMs: 1_000_000, nowMs: 1_010_000, timeoutMs: 300_000 };
const decide = (over: Partial<GuestReadyInput>) => decideGuestReady({ ...base, ...over });

describe('GuestReady', () => {
  it('reads the VC boot timeout, 5 minutes when omitted', () => {
    assert.equal(bootTimeoutMs(undefined), DEFAULT_BOOT_TIMEOUT_MS);
    assert.equal(bootTimeoutMs('90s'), 90_000);
    assert.equal(bootTimeoutMs('1h30m'), 5_400_000);
    assert.equal(bootTimeoutMs('500ms'), 500);
  });

  it('is False (Booting) right after a start, and probes until the guest reports', () => {
    const started = decide({ booted: true, previous: cond('True', 'AgentReported') });
    assert.equal(started.condition?.status, 'False');
    assert.equal(started.condition?.reason, 'Booting');
    assert.ok(started.requeueAfterMs! <= 1000);
    assert.equal(shouldProbeGuest('Running', true, undefined), false, 'not probed in the reconcile that started it');
    assert.equal(shouldProbeGuest('Running', false, cond('False', 'Booting')), true);
    assert.equal(shouldProbeGuest('Running', false, cond('True', 'AgentReported')), false, 'known ready: no probe');
    assert.equal(shouldProbeGuest('Stopped', false, undefined), false);
    const waiting = decide({ previous: cond('False', 'Booting'), probe: { by: 'none' } });
    assert.equal(waiting.condition?.reason, 'Booting');
  });

  it('turns True on the agent\'s answer or the console READY line', () => {
    const a = decide({ previous: cond('False', 'Booting'), probe: { by: 'agent', node: 'vc-0', ip: '10.0.0.2', uptimeSeconds: 4 } });
    assert.deepEqual([a.condition?.status, a.condition?.reason], ['True', 'AgentReported']);
    assert.match(a.condition!.message!, /vc-0 10\.0\.0\.2/);
    const c = decide({ previous: cond('False', 'Booting'), probe: { by: 'console', line: 'VIRTUALINUX-READY vc-0 10.0.0.2' } });
    assert.deepEqual([c.condition?.status, c.condition?.reason], ['True', 'ConsoleReady']);
  });

  it('stays True while the same boot runs, also through a migration', () => {
    assert.deepEqual(decide({ previous: cond('True', 'AgentReported') }), {});
    assert.deepEqual(decide({ phase: 'Migrating', previous: cond('True', 'AgentReported') }), {});
  });

  it('times out after the boot timeout with one event, and still turns True when the guest comes late', () => {
    const t = decide({ previous: cond('False', 'Booting'), probe: { by: 'none' }, nowMs: base.bootTimeMs! + 300_000 });
    assert.deepEqual([t.condition?.status, t.condition?.reason, t.timedOut], ['False', 'BootTimeout', true]);
    const again = decide({ previous: cond('False', 'BootTimeout'), probe: { by: 'none' }, nowMs: base.bootTimeMs! + 400_000 });
    assert.equal(again.condition?.reason, 'BootTimeout');
    assert.equal(again.timedOut, false, 'the event is recorded once');
    const late = decide({ previous: cond('False', 'BootTimeout'), probe: { by: 'agent', node: 'n', ip: 'i', uptimeSeconds: 400 } });
    assert.equal(late.condition?.status, 'True');
    const before = decide({ previous: cond('False', 'Booting'), probe: { by: 'none' }, nowMs: base.bootTimeMs! + 299_999 });
    assert.equal(before.condition?.reason, 'Booting');
  });

  it('a resume continues the saved boot: True at once if the guest had reported in, else Booting from the resume', () => {
    const saved = { reason: 'ConsoleReady', message: 'the guest printed: VIRTUALINUX-READY duo-0 10.0.0.2' };
    const r = decide({ booted: true, resumedReady: saved, previous: cond('False', 'NotRunning') });
    assert.deepEqual([r.condition?.status, r.condition?.reason], ['True', 'Resumed']);
    assert.match(r.condition!.message!, /before the suspend: the guest printed: VIRTUALINUX-READY duo-0/);
    assert.equal(r.requeueAfterMs, undefined, 'no probing of a guest known ready');
    const notYet = decide({ booted: true, previous: cond('False', 'NotRunning') });
    assert.deepEqual([notYet.condition?.status, notYet.condition?.reason], ['False', 'Booting']);
  });

  it('is False (NotRunning) when the VM does not run', () => {
    for (const phase of ['Stopped', 'Suspended', 'Failed', 'Scheduled'] as const) {
      const d = decide({ phase, previous: cond('True', 'AgentReported') });
      assert.deepEqual([d.condition?.status, d.condition?.reason], ['False', 'NotRunning']);
    }
  });
});
