// High availability end to end on the testbed (issue 18): three physical nodes with real sshd,
// the reference guest, a real vc-manager (--node-failure-grace 10, probes every 2 s). A node is
// killed (hack/testbed fail: sshd and QEMUs gone), cut off (its link down, its QEMU still running)
// or cannot be fenced (its agent cannot read the testbed): the test samples the QEMU processes of
// every node namespace from this machine all along and asserts that no VM ever runs twice.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { EventObject, PhysicalNode, VirtualNode } from '../../api/types.js';
import { namespacePids } from '../../drivers/fencing/testbed-agent.js';
import { failNode, healNode } from '../../hack/lib/testbed-faults.js';
import { waitFor } from '../controllers/helpers.js';

const VC = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ha, namespace: default}
spec:
  nodes: 2
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
`;

describe('high availability end to end on the testbed', function () {
  this.timeout(20 * 60_000);
  let h: ClusterHarness;
  let maxCopies = new Map<string, number>();
  let sampler: NodeJS.Timeout | undefined;
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const pn = (name: string) => h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  const logs = async (name: string) => (await h.vcctl(['logs', `vn/${name}`])).stdout;

  /** Nodes whose namespace holds a QEMU of `domain` (read from /proc: works for cut-off nodes). */
  async function copiesOf(domain: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of h.testbed.nodes) {
      for (const pid of (await namespacePids(n.netns)) ?? []) {
        let argv: string[] = [];
        try { argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { continue; }
        if (/qemu-system/.test(argv[0] ?? '') && argv.some((a) => a.includes(domain))) { out.push(n.name); break; }
      }
    }
    return out;
  }
  function startSampling(): void {
    maxCopies = new Map();
    const tick = async () => {
      for (const d of ['default.ha-0', 'default.ha-1']) {
        const c = (await copiesOf(d)).length;
        maxCopies.set(d, Math.max(maxCopies.get(d) ?? 0, c));
      }
      sampler = setTimeout(() => void tick(), 300);
    };
    void tick();
  }
  function stopSampling(): void {
    if (sampler) clearTimeout(sampler);
    sampler = undefined;
  }

  async function restartedElsewhere(name: string, lost: string, t0: number): Promise<number> {
    await waitFor(`${name} Running off ${lost}`, async () => {
      const v = await vn(name);
      return v.status?.phase === 'Running' && !!v.spec?.physicalNode && v.spec.physicalNode !== lost;
    }, 180_000, 250);
    const runningS = (Date.now() - t0) / 1000;
    const v = await vn(name);
    const marker = `VIRTUALINUX-READY ${name} ${v.status?.ip}`;
    await waitFor(`${marker} on the new console`, async () => (await logs(name)).includes(marker), 180_000, 1000);
    assert.deepEqual(await copiesOf(`default.${name}`), [v.spec!.physicalNode]);
    return runningS;
  }

  async function fencedEvents(node: string, reason: string): Promise<EventObject[]> {
    return (await h.store.list<EventObject>('Event')).items.filter((e) => e.spec?.involvedObject.name === node && e.spec.reason === reason);
  }

  async function recover(node: string): Promise<void> {
    await healNode(h.testbed.dir, node);
    const r = await h.vcctl(['uncordon', node]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${node} Ready and no longer fenced`, async () => {
      const c = (await pn(node)).status?.conditions ?? [];
      return c.some((x) => x.type === 'Ready' && x.status === 'True') && !c.some((x) => x.type === 'Fenced' && x.status === 'True');
    }, 120_000, 500);
  }

  before(async function () {
    this.timeout(10 * 60_000);
    h = await startClusterHarness({
      nodes: 3, cores: 2, memoryMiB: 1024,
      managerArgs: ['--orphan-grace', '5', '--node-failure-grace', '10', '--node-probe-interval', '2'],
    });
    const a = await h.vcctl(['apply', '-f', '-'], VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/ha', '--for=condition=Ready', '--timeout=8m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/ha'])).stdout);
  });
  after(async () => {
    stopSampling();
    await h?.stop();
  });
  afterEach(async function () {
    stopSampling();
    if (this.currentTest?.state === 'failed' && h) {
      const r = await h.vcctl(['get', 'vc,vn,pn', '-o', 'wide']);
      console.log(r.stdout, r.stderr, (await h.vcctl(['events'])).stdout, `manager log: ${h.managerLog}`);
    }
  });

  it('a killed node: fenced, its VM Running elsewhere with a READY line, never two copies', async () => {
    const lost = (await vn('ha-0')).spec!.physicalNode!;
    startSampling();
    const t0 = Date.now();
    await failNode(h.testbed.dir, lost);
    const s = await restartedElsewhere('ha-0', lost, t0);
    console.log(`      ha-0 Running elsewhere ${s.toFixed(1)} s after the kill (grace 10 s)`);
    const c = (await pn(lost)).status?.conditions?.find((x) => x.type === 'Fenced');
    assert.equal(c?.status, 'True');
    assert.equal((await pn(lost)).spec?.unschedulable, true);
    assert.ok((await fencedEvents(lost, 'Fenced')).length >= 1);
    assert.equal((await vn('ha-1')).spec?.physicalNode !== lost, true);
    assert.ok((maxCopies.get('default.ha-0') ?? 0) <= 1, `ha-0 ran twice at a sample`);
    assert.ok((maxCopies.get('default.ha-1') ?? 0) <= 1);
    await recover(lost);
    assert.deepEqual(await copiesOf('default.ha-0'), [(await vn('ha-0')).spec!.physicalNode]);
  });

  it('a cut-off node (its QEMU still running): fenced first, then restarted elsewhere, exactly one copy at every sample', async () => {
    const lost = (await vn('ha-1')).spec!.physicalNode!;
    assert.deepEqual(await copiesOf('default.ha-1'), [lost]);
    startSampling();
    const t0 = Date.now();
    await failNode(h.testbed.dir, lost, { partition: true });
    await waitFor('still running on the cut-off node for a while', async () => (await copiesOf('default.ha-1')).includes(lost), 5_000, 200);
    const s = await restartedElsewhere('ha-1', lost, t0);
    console.log(`      ha-1 Running elsewhere ${s.toFixed(1)} s after the partition`);
    assert.equal(maxCopies.get('default.ha-1'), 1, 'exactly one copy of ha-1 at every sample');
    assert.ok((maxCopies.get('default.ha-0') ?? 0) <= 1);
    await recover(lost);
    // back: it runs none of the VMs
    assert.ok(!(await copiesOf('default.ha-1')).includes(lost) || (await vn('ha-1')).spec?.physicalNode === lost);
    assert.equal((await copiesOf('default.ha-1')).length, 1);
  });

  it('a fence that fails: FencingFailed with a Warning, nothing restarted, the VM keeps running where it was', async () => {
    const lost = (await vn('ha-0')).spec!.physicalNode!;
    const node = await pn(lost);
    await h.store.update<PhysicalNode>({ ...node, spec: { ...node.spec!, fencing: { agent: 'testbed', testbedDir: '/nonexistent/tb-ha18' } } });
    startSampling();
    await failNode(h.testbed.dir, lost, { partition: true });
    await waitFor(`${lost} FencingFailed`, async () => (await pn(lost)).status?.conditions?.some((x) => x.type === 'Fenced' && x.reason === 'FencingFailed') ?? false, 120_000, 500);
    await new Promise((r) => setTimeout(r, 15_000));
    assert.ok((await fencedEvents(lost, 'FencingFailed')).some((e) => e.spec?.type === 'Warning'));
    assert.equal((await vn('ha-0')).spec?.physicalNode, lost, 'not re-placed');
    assert.deepEqual(await copiesOf('default.ha-0'), [lost], 'still running only on the cut-off node');
    assert.ok((maxCopies.get('default.ha-0') ?? 0) <= 1);
    await healNode(h.testbed.dir, lost);
    await waitFor(`${lost} Ready again`, async () => (await pn(lost)).status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false, 60_000, 500);
    assert.deepEqual(await copiesOf('default.ha-0'), [lost]);
  });
});
