// High availability end to end on the testbed (issue 18): three physical nodes with real sshd,
// the reference guest, a real vc-manager (--node-failure-grace 10, probes every 2 s). A node is
// killed (hack/testbed fail: sshd and QEMUs gone), cut off (its link down, its QEMU still running)
// or cannot be fenced (its agent cannot read the testbed): the test samples the QEMU processes of
// every node namespace from this machine all along and asserts that no VM ever runs twice.

import assert from 'node:assert/strict';
import type { PhysicalNode } from '../../api/types.js';
import { failNode, healNode } from '../../hack/lib/testbed-faults.js';
import { waitFor } from '../controllers/helpers.js';
import { updateWithRetry } from '../../api/finalizers.js';
import { HA_VMS, haSuite } from '../ha/ha-cluster.js';

describe('high availability end to end on the testbed', function () {
  this.timeout(20 * 60_000);
  const suite = haSuite();
  const ha = () => suite.cluster;
  const h = () => suite.cluster.h;
  const vn = (name: string) => ha().vn(name);
  const pn = (name: string) => ha().pn(name);
  const copiesOf = (domain: string) => ha().copiesOf(domain);
  const startSampling = () => (suite.sampler = ha().sampler(HA_VMS).start());
  const maxCopies = (domain: string) => suite.sampler?.maxCopies.get(domain) ?? 0;
  const restartedElsewhere = async (name: string, lost: string, t0: number) => (await ha().restartedElsewhere(name, [lost], t0)).runningS;
  const fencedEvents = (node: string, reason: string) => ha().events(node, reason);
  const recover = (node: string) => ha().recover(node);

  it('a killed node: fenced, its VM Running elsewhere with a READY line, never two copies', async () => {
    const lost = (await vn('ha-0')).spec!.physicalNode!;
    startSampling();
    const t0 = Date.now();
    await failNode(h().testbed.dir, lost);
    const s = await restartedElsewhere('ha-0', lost, t0);
    console.log(`      ha-0 Running elsewhere ${s.toFixed(1)} s after the kill (grace 10 s)`);
    const c = (await pn(lost)).status?.conditions?.find((x) => x.type === 'Fenced');
    assert.equal(c?.status, 'True');
    assert.equal((await pn(lost)).spec?.unschedulable, true);
    assert.ok((await fencedEvents(lost, 'Fenced')).length >= 1);
    assert.equal((await vn('ha-1')).spec?.physicalNode !== lost, true);
    assert.ok(maxCopies('default.ha-0') <= 1, `ha-0 ran twice at a sample`);
    assert.ok(maxCopies('default.ha-1') <= 1);
    await recover(lost);
    assert.deepEqual(await copiesOf('default.ha-0'), [(await vn('ha-0')).spec!.physicalNode]);
  });

  it('a cut-off node (its QEMU still running): fenced first, then restarted elsewhere, exactly one copy at every sample', async () => {
    const lost = (await vn('ha-1')).spec!.physicalNode!;
    assert.deepEqual(await copiesOf('default.ha-1'), [lost]);
    startSampling();
    const t0 = Date.now();
    await failNode(h().testbed.dir, lost, { partition: true });
    await waitFor('still running on the cut-off node for a while', async () => (await copiesOf('default.ha-1')).includes(lost), 5_000, 200);
    const s = await restartedElsewhere('ha-1', lost, t0);
    console.log(`      ha-1 Running elsewhere ${s.toFixed(1)} s after the partition`);
    assert.equal(maxCopies('default.ha-1'), 1, 'exactly one copy of ha-1 at every sample');
    assert.ok(maxCopies('default.ha-0') <= 1);
    await recover(lost);
    // back: it runs none of the VMs
    assert.ok(!(await copiesOf('default.ha-1')).includes(lost) || (await vn('ha-1')).spec?.physicalNode === lost);
    assert.equal((await copiesOf('default.ha-1')).length, 1);
  });

  it('a fence that fails: FencingFailed with a Warning, nothing restarted, the VM keeps running where it was', async () => {
    const lost = (await vn('ha-0')).spec!.physicalNode!;
    // (read, change, write, again on a conflict: the probes write the node's status every 2 s)
    await updateWithRetry<PhysicalNode>(h().store, { kind: 'PhysicalNode', name: lost },
      (node) => ({ ...node, spec: { ...node.spec!, fencing: { agent: 'testbed', testbedDir: '/nonexistent/tb-ha18' } } }));
    startSampling();
    await failNode(h().testbed.dir, lost, { partition: true });
    await waitFor(`${lost} FencingFailed`, async () => (await pn(lost)).status?.conditions?.some((x) => x.type === 'Fenced' && x.reason === 'FencingFailed') ?? false, 120_000, 500);
    await new Promise((r) => setTimeout(r, 15_000));
    assert.ok((await fencedEvents(lost, 'FencingFailed')).some((e) => e.spec?.type === 'Warning'));
    assert.equal((await vn('ha-0')).spec?.physicalNode, lost, 'not re-placed');
    assert.deepEqual(await copiesOf('default.ha-0'), [lost], 'still running only on the cut-off node');
    assert.ok(maxCopies('default.ha-0') <= 1);
    await healNode(h().testbed.dir, lost);
    await waitFor(`${lost} Ready again`, async () => (await pn(lost)).status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false, 60_000, 500);
    assert.deepEqual(await copiesOf('default.ha-0'), [lost]);
  });
});
