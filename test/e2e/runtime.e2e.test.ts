// End to end on the testbed (issue 8): two physical nodes with real sshd, the reference guest,
// the embedded store and a real vc-manager process. VMs are real QEMU (TCG) processes inside the
// nodes' network namespaces; nothing is sent from this namespace to a VC subnet.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { Migration, OSTemplate, PhysicalNode, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';
import { waitFor } from '../controllers/helpers.js';
import { nodeExec } from '../../hack/lib/testbed.js';
import { updateWithRetry } from '../../api/finalizers.js';
import { getCondition } from '../../api/conditions.js';
import { assertResumedReady } from './resume-checks.js';

const VC = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: duo, namespace: default}
spec:
  nodes: 2
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 32}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
  firstBoot: {script: "echo first-boot-ran-on $VC_NODE_NAME"}
`;

describe('runtime end to end on the testbed', function () {
  this.timeout(15 * 60_000);
  let h: ClusterHarness;
  const vcRef = { kind: 'VirtualCluster', namespace: 'default', name: 'duo' };
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const hostsOf = async (domain: string): Promise<string[]> => {
    const out: string[] = [];
    for (const [node, doms] of await h.domains()) if (doms.some((d) => d.name === domain && d.state !== 'shutoff')) out.push(node);
    return out;
  };
  const logs = async (name: string) => (await h.vcctl(['logs', `vn/${name}`])).stdout;
  /** Read, change, write, again on a conflict (the manager writes the VC's status meanwhile). */
  const changeVc = (spec: (s: VirtualCluster['spec'] & object) => VirtualCluster['spec']) =>
    updateWithRetry<VirtualCluster>(h.store, vcRef, (vc) => ({ ...vc, spec: spec(vc.spec!) }));

  before(async function () {
    this.timeout(10 * 60_000);
    // A migration times out after 60 s (default 120): the one slowed to 1 MiB/s that a killed
    // manager leaves behind may not converge, and its next manager then undoes it at the timeout
    // (that case took 123 s with 120); the migrations at full speed here take 5-15 s under load.
    h = await startClusterHarness({ nodes: 2, cores: 2, memoryMiB: 1024, managerArgs: ['--orphan-grace', '5', '--migration-timeout', '60'] });
  });
  after(async () => {
    await h?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && h) {
      const r = await h.vcctl(['get', 'vc,vn,vol,mig,pn', '-o', 'wide']);
      console.log(r.stdout, r.stderr, `manager log: ${h.managerLog}`);
    }
  });

  it('brings a VC of 2 VMs on 2 nodes to Ready, each guest printing its READY marker', async () => {
    const a = await h.vcctl(['apply', '-f', '-'], VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/duo', '--for=condition=Ready', '--timeout=6m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/duo'])).stdout);
    const [n0, n1] = [await vn('duo-0'), await vn('duo-1')];
    assert.notEqual(n0.spec?.physicalNode, n1.spec?.physicalNode, 'Cyclic spreads the two VMs');
    for (const v of [n0, n1]) {
      assert.equal(v.status?.phase, 'Running');
      const marker = `VIRTUALINUX-READY ${v.metadata.name} ${v.status?.ip}`;
      await waitFor(`${marker} on the console`, async () => (await logs(v.metadata.name)).includes(marker), 120_000, 1000);
      assert.match(await logs(v.metadata.name), new RegExp(`first-boot-ran-on ${v.metadata.name}`));
      assert.deepEqual(await hostsOf(`default.${v.metadata.name}`), [v.spec!.physicalNode]);
    }
  });

  it('suspends to the storage root with no QEMU left, and resumes on the nodes of a placement changed meanwhile', async () => {
    const s = await h.vcctl(['suspend', 'vc/duo', '--wait', '--timeout=5m']);
    assert.equal(s.code, 0, s.stderr);
    for (const doms of (await h.domains()).values()) assert.deepEqual(doms.filter((d) => d.state !== 'shutoff'), []);
    const saved = readdirSync(join(h.testbed.sanDir, 'runtime', 'default')).filter((f) => f.endsWith('.vmstate'));
    assert.equal(saved.length, 2, `saved states: ${saved.join(', ')}`);

    await changeVc((s) => ({ ...s, placement: { strategy: 'Block', mode: 'Lazy' } }));
    const first = h.testbed.nodes[0]!.name;
    await waitFor('re-placed on the first node', async () => (await vn('duo-0')).spec?.physicalNode === first && (await vn('duo-1')).spec?.physicalNode === first, 60_000, 250);

    const resumedAt = new Date();
    const r = await h.vcctl(['resume', 'vc/duo', '--wait', '--timeout=5m']);
    assert.equal(r.code, 0, r.stderr);
    for (const name of ['duo-0', 'duo-1']) {
      await waitFor(`${name} running on ${first}`, async () => (await hostsOf(`default.${name}`)).join() === first, 60_000, 500);
    }
    assert.equal(readdirSync(join(h.testbed.sanDir, 'runtime', 'default')).filter((f) => f.endsWith('.vmstate')).length, 0, 'resume consumes the saved states');
    await assertResumedReady(h, 'duo', ['duo-0', 'duo-1'], resumedAt);
  });

  it('an OSTemplate update while suspended resets the disks, and resume boots afresh instead of restoring stale memory', async () => {
    const s = await h.vcctl(['suspend', 'vc/duo', '--wait', '--timeout=5m']);
    assert.equal(s.code, 0, s.stderr);
    await updateWithRetry<OSTemplate>(h.store, { kind: 'OSTemplate', name: 'busybox' }, (t) => ({ ...t, spec: { ...t.spec!, revision: t.spec!.revision + 1 } }));
    await waitFor('the snapshots reset', async () => /SnapshotsReset/.test((await h.vcctl(['events'])).stdout), 120_000, 1000);
    await waitFor('the reset disks ready', async () => {
      const c = (await h.store.get<VirtualCluster>(vcRef)).status?.conditions?.find((x) => x.type === 'StorageReady');
      return c?.status === 'True' && c.reason === 'Provisioned';
    }, 120_000, 500);
    const r = await h.vcctl(['resume', 'vc/duo', '--wait', '--timeout=5m']);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await h.vcctl(['events'])).stdout, /SavedStateDiscarded/);
    for (const name of ['duo-0', 'duo-1']) {
      const v = await vn(name);
      const marker = `VIRTUALINUX-READY ${name} ${v.status?.ip}`;
      try {
        await waitFor(`${name} booted afresh`, async () => (await logs(name)).includes(marker), 120_000, 1000);
      } catch (err) {
        console.log(`console of ${name}:\n${await logs(name)}\nevents:\n${(await h.vcctl(['events'])).stdout}`);
        throw err;
      }
      assert.match(await logs(name), new RegExp(`first-boot-ran-on ${name}`), 'the reset disk runs its first boot again');
      await waitFor(`${name} GuestReady from its new boot`, async () => getCondition((await vn(name)).status?.conditions, 'GuestReady')?.reason === 'AgentReported', 60_000, 500);
    }
    assert.equal(readdirSync(join(h.testbed.sanDir, 'runtime', 'default')).filter((f) => f.endsWith('.vmstate')).length, 0);
  });

  it('live-migrates a VM: it runs on the target only and the downtime is recorded', async () => {
    const target = h.testbed.nodes[1]!.name;
    const m = await h.vcctl(['migrate', 'vn/duo-1', '--to', target, '--wait', '--timeout=5m']);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    assert.match(m.stdout, /succeeded: downtime \d+ ms, total \d+ ms/);
    const migs = (await h.store.list<Migration>('Migration', { namespace: 'default' })).items.filter((x) => x.spec?.virtualNode === 'duo-1');
    const done = migs.find((x) => x.status?.phase === 'Succeeded')!;
    assert.ok(done.status!.downtimeMs! >= 0 && done.status!.totalMs! > 0);
    // QEMU's driver prepares the target while the Migration is Pending: not on the recorded clock.
    assert.match(done.status!.message ?? '', /end to end \d+ ms \(the target prepared in \d+ ms before\)/);
    assert.deepEqual(await hostsOf('default.duo-1'), [target]);
    await waitFor('the binding follows the migration', async () => (await vn('duo-1')).spec?.physicalNode === target, 30_000, 250);
  });

  it('a migration whose target QEMU is killed midway fails, leaving the VM on the source and nothing on the target', async () => {
    const [src, target] = [h.testbed.nodes[0]!, h.testbed.nodes[1]!];
    // Slowed down to 256 KiB/s so that there is a midway.
    const created = await h.vcctl(['migrate', 'vn/duo-0', '--to', target.name, '--max-bandwidth', '256Ki']);
    assert.equal(created.code, 0, created.stderr);
    const name = /^migration\/(\S+) created/.exec(created.stdout)![1]!;
    const ref = { kind: 'Migration', namespace: 'default', name };
    const incoming = await waitFor('the incoming QEMU on the target', async () => {
      const doms = (await h.domains()).get(target.name) ?? [];
      return doms.find((d) => d.name === 'default.duo-0' && d.pid);
    }, 120_000, 100);
    const kill = await nodeExec(target, ['kill', '-KILL', String(incoming.pid)]);
    assert.equal(kill.code, 0, kill.stderr);
    const failed = await waitFor('the migration to fail', async () => {
      const m = await h.store.get<Migration>(ref);
      return m.status?.phase === 'Failed' || m.status?.phase === 'Succeeded' ? m : undefined;
    }, 180_000, 250);
    assert.equal(failed.status?.phase, 'Failed', failed.status?.message);
    assert.deepEqual(await hostsOf('default.duo-0'), [src.name]);
    const onTarget = (await h.domains()).get(target.name)!.filter((d) => d.name === 'default.duo-0');
    assert.deepEqual(onTarget, [], 'no process or files of the VM remain on the target');
    assert.equal((await vn('duo-0')).spec?.physicalNode, src.name);
  });

  it('a domain that dies unexpectedly is reported Failed with an Event, then restarted', async () => {
    const before = await vn('duo-1');
    const node = h.testbed.nodes.find((n) => n.name === before.status?.host)!;
    const dom = ((await h.domains()).get(node.name) ?? []).find((d) => d.name === 'default.duo-1')!;
    assert.ok(dom?.pid, 'duo-1 runs with a pid');
    assert.equal((await nodeExec(node, ['kill', '-KILL', String(dom.pid)])).code, 0);
    await waitFor('a DomainDied event', async () => (await h.vcctl(['events'])).stdout.includes('DomainDied'), 60_000, 500);
    const back = await waitFor('duo-1 running again', async () => {
      const v = await vn('duo-1');
      return v.status?.phase === 'Running' && (v.status.restarts ?? 0) >= 1 && (await hostsOf('default.duo-1')).length === 1 ? v : undefined;
    }, 120_000, 500);
    assert.equal(back.status?.restarts, 1);
    assert.ok(back.status?.lastFailureTime);
  });

  it('a domain no VirtualNode wants is reported and stopped after the grace period', async () => {
    const node = h.testbed.nodes[0]!;
    const pn = await h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name: node.name });
    const disk = join(h.testbed.sanDir, 'ghost.qcow2');
    assert.equal((await nodeExec(node, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', h.image.image, disk])).code, 0);
    const transports = new TransportCache();
    try {
      const driver = new HypervisorDrivers(transports, 'tcg').get(pn);
      await driver.create({
        name: 'default.ghost', vcpus: 1, memoryMiB: 64,
        boot: { kernel: h.image.kernel, initrd: h.image.initrd, cmdline: h.image.cmdline },
        disks: { root: { path: disk, format: 'qcow2' } },
      });
      await waitFor('an OrphanDomain event', async () => (await h.vcctl(['events'])).stdout.includes('default.ghost'), 60_000, 500);
      await waitFor('the ghost stopped', async () => !(await driver.get('default.ghost')), 90_000, 1000);
      assert.match((await h.vcctl(['events'])).stdout, /OrphanDestroyed .*default\.ghost/);
    } finally {
      await transports.closeAll();
      await nodeExec(node, ['rm', '-f', disk]);
    }
  });

  it('a manager killed in the middle of a migration: the next one finishes or undoes it, and the VM runs on exactly one node', async () => {
    const v = await vn('duo-0');
    const source = v.status!.host!;
    const target = h.testbed.nodes.find((n) => n.name !== source)!.name;
    const created = await h.vcctl(['migrate', 'vn/duo-0', '--to', target, '--max-bandwidth', '1Mi']);
    assert.equal(created.code, 0, created.stderr);
    const ref = { kind: 'Migration', namespace: 'default', name: /^migration\/(\S+) created/.exec(created.stdout)![1]! };
    await waitFor('the transfer under way', async () => (await h.store.get<Migration>(ref)).status?.phase === 'Running'
      && ((await h.domains()).get(target) ?? []).some((d) => d.name === 'default.duo-0'), 120_000, 100);
    await h.restartManager('SIGKILL');
    const end = await waitFor('the migration to end', async () => {
      const m = await h.store.get<Migration>(ref);
      return m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed' ? m : undefined;
    }, 240_000, 500);
    const where = await waitFor('the VM settled on one node', async () => {
      const hs = await hostsOf('default.duo-0');
      return hs.length === 1 ? hs : undefined;
    }, 60_000, 500);
    assert.deepEqual(where, [end.status?.phase === 'Succeeded' ? target : source], end.status?.message);
    const running = ((await h.domains()).get(where[0]!) ?? []).find((d) => d.name === 'default.duo-0');
    assert.equal(running?.state, 'running');
    await waitFor('the VirtualNode reports where it runs', async () => (await vn('duo-0')).status?.host === where[0], 60_000, 500);
  });

  it('Stopped shuts every VM down (no QEMU left), and Running boots them again', async () => {
    await changeVc((s) => ({ ...s, state: 'Stopped' }));
    await waitFor('the VC Stopped', async () => (await h.store.get<VirtualCluster>(vcRef)).status?.phase === 'Stopped', 180_000, 500);
    for (const doms of (await h.domains()).values()) assert.deepEqual(doms.filter((d) => d.state !== 'shutoff'), []);
    await changeVc((s) => ({ ...s, state: 'Running' }));
    // Ready for this generation: every VM was started again, which began a new console log
    const w = await h.vcctl(['wait', 'vc/duo', '--for=condition=Ready', '--timeout=5m']);
    assert.equal(w.code, 0, w.stderr);
    for (const name of ['duo-0', 'duo-1']) {
      const v = await vn(name);
      await waitFor(`${name} booted`, async () => (await logs(name)).includes(`VIRTUALINUX-READY ${name} ${v.status?.ip}`), 120_000, 1000);
      assert.equal((await hostsOf(`default.${name}`)).length, 1);
    }
  });

  it('deleting the VC leaves no process, volume or file behind', async () => {
    const d = await h.vcctl(['delete', 'vc', 'duo', '--wait', '--timeout=5m']);
    assert.equal(d.code, 0, d.stderr);
    for (const doms of (await h.domains()).values()) assert.deepEqual(doms, []);
    // --wait waits for the VC; its VirtualNodes go by background cascade just after (each runs its
    // runtime finalizer once the GC deletes it): give them a moment on a loaded machine.
    await waitFor('the VirtualNodes and Volumes gone', async () =>
      (await h.store.list<VirtualNode>('VirtualNode')).items.length === 0 && (await h.store.list<Volume>('Volume')).items.length === 0, 60_000, 250);
    const vcsDir = join(h.testbed.sanDir, 'vcs');
    const left = existsSync(vcsDir) ? readdirSync(vcsDir, { recursive: true }) : [];
    assert.deepEqual(left.filter((f) => !String(f).match(/^[^/]+$/)), [], `files left under ${vcsDir}`);
    const saved = existsSync(join(h.testbed.sanDir, 'runtime', 'default')) ? readdirSync(join(h.testbed.sanDir, 'runtime', 'default')) : [];
    assert.deepEqual(saved, []);
  });
});
