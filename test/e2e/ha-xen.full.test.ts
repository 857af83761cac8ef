// High availability on full nodes (issue 18 on issue 15's nodes, tier full): two QEMU TCG machines
// booting Xen 4.17 with a Debian dom0, the embedded store and a real vc-manager (fencing agent
// `testbed`: it quits the node's QEMU, and only the QEMU's absence confirms the fence). A VM of a
// `hypervisor: xen` VC runs as a PV domU on blade1; blade1's machine is killed (hack/testbed fail):
// the manager fences it after the grace and boots the VM on blade2 from its own disks (qcow2 on the
// testbed's shared directory), up to a new READY line. All along the test samples `xl list` on every
// node whose machine is alive (a killed machine runs nothing) and asserts one copy at most.
//
// The grace is 60 s, not the namespace tests' 10 s: a TCG dom0 on a loaded machine answers a probe
// in tens of seconds, and a shorter grace fenced live nodes there.

import assert from 'node:assert/strict';
import type { PhysicalNode, VirtualNode, Volume } from '../../api/types.js';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import { pidAlive } from '../../hack/lib/testbed.js';
import { failNode } from '../../hack/lib/testbed-faults.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { waitFor } from '../controllers/helpers.js';
import { dom0Transports, printCluster } from './full-dom0.js';

const GRACE_S = 60;
const VC = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: hax, namespace: default}
spec:
  nodes: 1
  template: busybox
  hypervisor: xen
  highAvailability: restart
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Block, mode: Lazy}
  state: Running
`;
const DOMAIN = 'default.hax-0';

describe('high availability on two full Xen nodes: a killed machine is fenced and its domU boots on the other', function () {
  this.timeout(40 * 60_000);
  let h: ClusterHarness;
  const dom0 = new Map<string, SshTransport>();
  let maxCopies = 0;
  let samples = 0;
  let sampling = false;
  let sampler: Promise<void> | undefined;

  const vn = () => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: 'hax-0' });
  const pn = (name: string) => h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  const machineAlive = (name: string) => pidAlive(h.testbed.nodes.find((n) => n.name === name)!.full!.qemuPid);
  /** The nodes where `xl list` shows the VM's domain; a node whose machine is gone runs nothing. */
  const copies = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const [name, t] of dom0) {
      if (!machineAlive(name)) continue;
      const r = await t.exec(['xl', 'list'], { timeoutMs: 120_000 });
      if (r.code !== 0 && !machineAlive(name)) continue; // died while we asked
      assert.equal(r.code, 0, `xl list on ${name}: ${r.stderr}`);
      if (r.stdout.split('\n').some((l) => l.split(/\s+/)[0] === DOMAIN)) out.push(name);
    }
    return out;
  };
  const startSampling = () => {
    sampling = true;
    sampler = (async () => {
      while (sampling) {
        const c = await copies().catch(() => undefined);
        if (c) {
          samples++;
          maxCopies = Math.max(maxCopies, c.length);
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
  };
  const stopSampling = async () => {
    sampling = false;
    await sampler;
  };

  before(async function () {
    this.timeout(25 * 60_000);
    h = await startClusterHarness({ nodes: 2, full: true, managerArgs: ['--orphan-grace', '30', '--node-failure-grace', String(GRACE_S), '--node-probe-interval', '5'] });
    for (const [name, t] of dom0Transports(h)) dom0.set(name, t);
    const a = await h.vcctl(['apply', '-f', '-'], VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/hax', '--for=condition=Ready', '--timeout=20m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/hax'])).stdout + (await h.vcctl(['describe', 'vn/hax-0'])).stdout + `manager log: ${h.managerLog}`);
  });
  after(async function () {
    this.timeout(10 * 60_000);
    await stopSampling();
    for (const t of dom0.values()) await t.close().catch(() => {});
    await h?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && h) await printCluster(h);
  });

  it('blade1 killed: Fenced and unschedulable, the VM Running on blade2 with a new READY line, never two copies', async () => {
    const v0 = await vn();
    assert.equal(v0.spec?.physicalNode, 'blade1', 'Block puts the one VM on the first node');
    assert.deepEqual(await copies(), ['blade1']);
    const readyBefore = ((await h.vcctl(['logs', 'vn/hax-0'])).stdout.match(/VIRTUALINUX-READY hax-0/g) ?? []).length;
    assert.ok(readyBefore >= 1, 'the guest reported READY on blade1');

    startSampling();
    const t0 = Date.now();
    await failNode(h.testbed.dir, 'blade1');
    await waitFor("blade1's QEMU gone", async () => !machineAlive('blade1'), 30_000, 100);

    await waitFor('hax-0 Running on blade2', async () => {
      const v = await vn();
      return v.spec?.physicalNode === 'blade2' && v.status?.phase === 'Running' ? v : undefined;
    }, 25 * 60_000, 2000);
    const runningS = (Date.now() - t0) / 1000;
    const logs = await waitFor('a new READY line from blade2', async () => {
      const text = (await h.vcctl(['logs', 'vn/hax-0'])).stdout;
      return text.includes('VIRTUALINUX-READY hax-0') ? text : undefined;
    }, 10 * 60_000, 3000);
    console.log(`      hax-0 Running on blade2 ${runningS.toFixed(1)} s after the kill (grace ${GRACE_S} s); ${samples} samples`);
    // vcctl logs reads the console of the node that runs it now: blade2's xenconsoled log
    assert.match(logs, /VIRTUALINUX-READY hax-0/);
    assert.deepEqual(await copies(), ['blade2']);
    await stopSampling();
    assert.ok(samples > 0, 'the sampler ran');
    assert.equal(maxCopies, 1, 'one copy of hax-0 at every sample');

    const lost = await pn('blade1');
    const fenced = lost.status?.conditions?.find((c) => c.type === 'Fenced');
    assert.equal(fenced?.status, 'True', JSON.stringify(lost.status?.conditions));
    assert.equal(lost.spec?.unschedulable, true);
    const events = (await h.vcctl(['events'])).stdout;
    assert.match(events, /Fenced/);
    // the surviving node was never fenced
    assert.notEqual((await pn('blade2')).status?.conditions?.find((c) => c.type === 'Fenced')?.status, 'True');
  });

  it('deleting the VC leaves no domain on blade2 and no volume', async () => {
    const d = await h.vcctl(['delete', 'vc', 'hax', '--wait', '--timeout=10m']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the VirtualNode and Volumes gone', async () =>
      (await h.store.list<VirtualNode>('VirtualNode')).items.length === 0 && (await h.store.list<Volume>('Volume')).items.length === 0, 180_000, 1000);
    assert.deepEqual(await copies(), []);
  });
});
