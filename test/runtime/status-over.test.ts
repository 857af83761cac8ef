// runtimeStatusOver: what the runtime's status write stores over the stored copy, in particular
// when a GuestReady finding was decided on an older cached copy than the one stored.
import assert from 'node:assert/strict';
import type { Condition, VirtualNode } from '../../api/types.js';
import { runtimeStatusOver } from '../../reconcilers/runtime/controller.js';

const T1 = '2026-12-07T18:10:00.000Z'; // the boot that died
const T2 = '2026-12-07T18:20:00.000Z'; // the restart
const cond = (status: 'True' | 'False', reason: string): Condition => ({ type: 'GuestReady', status, reason, message: reason, lastTransitionTime: T2 });
const stored = (bootTime: string, guest: Condition): VirtualNode => ({
  apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode',
  metadata: { name: 'vm-0', namespace: 'default', generation: 1 },
  status: { phase: 'Running', host: 'blade2', bootTime, conditions: [guest] },
} as VirtualNode);
const guestOf = (v: { status: { conditions?: Condition[] } }) => v.status.conditions?.find((c) => c.type === 'GuestReady');
const timeout = { type: 'GuestReady', status: 'False' as const, reason: 'BootTimeout', message: 'the guest did not report in within 5m of its start' };

describe('runtimeStatusOver: a GuestReady finding over the stored status', () => {
  it('a BootTimeout decided for the boot that died is not stored over the restarted boot, and not told', () => {
    const r = runtimeStatusOver(stored(T2, cond('False', 'Booting')), { phase: 'Running', host: 'blade2', message: 'running on blade2' }, '10.0.0.2', timeout, true, T1);
    assert.equal(r.guestWritten, false);
    assert.equal(guestOf(r)?.reason, 'Booting');
    assert.equal(r.status.bootTime, T2);
  });

  it('the same finding about the stored boot is stored and told', () => {
    const r = runtimeStatusOver(stored(T2, cond('False', 'Booting')), { phase: 'Running', host: 'blade2', message: 'running on blade2' }, '10.0.0.2', timeout, true, T2);
    assert.equal(r.guestWritten, true);
    assert.equal(guestOf(r)?.reason, 'BootTimeout');
  });

  it('a guest stored ready stays ready through a finding on an older copy of the same boot', () => {
    const r = runtimeStatusOver(stored(T2, cond('True', 'AgentReported')), { phase: 'Running', host: 'blade2', message: 'running on blade2' }, '10.0.0.2', timeout, true, T2);
    assert.equal(r.guestWritten, false);
    assert.equal(guestOf(r)?.status, 'True');
  });

  it('a new boot stores its finding whatever the stored boot time', () => {
    const booting = { type: 'GuestReady', status: 'False' as const, reason: 'Booting', message: 'waiting' };
    const r = runtimeStatusOver(stored(T1, cond('True', 'AgentReported')), { phase: 'Running', host: 'blade2', message: 'started', bootTime: T2 }, '10.0.0.2', booting, false, T2);
    assert.equal(r.guestWritten, true);
    assert.equal(guestOf(r)?.reason, 'Booting');
    assert.equal(r.status.bootTime, T2);
  });
});
