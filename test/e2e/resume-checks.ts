// A check both runtime end-to-end files (QEMU on namespace nodes, Xen on full nodes) make after a
// resume: a restored guest goes on with the boot it was saved in, so GuestReady is True at once
// (reason Resumed, in the same status write that says Running), not Booting until a READY line
// that a restored guest never prints again, and the VC is Ready without waiting for a boot timeout;
// no other GuestReady or BootTimeout Event is told of it after the resume (a probe decided on an
// older cached copy is neither written nor told).
import assert from 'node:assert/strict';
import { getCondition } from '../../api/conditions.js';
import type { EventObject, VirtualNode } from '../../api/types.js';
import type { ClusterHarness } from '../../hack/lib/cluster-harness.js';

/** `resumedAt`: when `vcctl resume` was run. */
export async function assertResumedReady(h: ClusterHarness, vc: string, names: readonly string[], resumedAt: Date, namespace = 'default'): Promise<void> {
  for (const name of names) {
    const v = await h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace, name });
    const c = getCondition(v.status?.conditions, 'GuestReady');
    assert.deepEqual([v.status?.phase, c?.status, c?.reason], ['Running', 'True', 'Resumed'], `${name} right after the resume: ${JSON.stringify(c)}`);
    assert.equal(v.status?.savedGuestReady, undefined, `${name}: the saved readiness is used up with the saved state`);
  }
  const w = await h.vcctl(['wait', `vc/${vc}`, '--for=condition=Ready', '--timeout=90s']);
  assert.equal(w.code, 0, `vc/${vc} Ready after the resume: ${w.stderr}${(await h.vcctl(['describe', `vc/${vc}`])).stdout}`);
  const told = (await h.store.list<EventObject>('Event', { namespace })).items
    .filter((e) => names.includes(e.spec?.involvedObject.name ?? '') && ['GuestReady', 'BootTimeout'].includes(e.spec?.reason ?? '') &&
      Date.parse(e.spec?.lastTimestamp ?? '') >= resumedAt.getTime())
    .map((e) => `${e.spec?.involvedObject.name} ${e.spec?.reason}: ${e.spec?.message.startsWith('resumed from saved memory; before the suspend: ') ? 'resumed' : e.spec?.message}`);
  assert.deepEqual(told.sort(), names.map((n) => `${n} GuestReady: resumed`).sort(), 'one GuestReady Event per VM since the resume: the Resumed one');
}
