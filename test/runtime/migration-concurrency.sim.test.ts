// SIMULATION (sim hosts: no guest is real; the real migrations are the e2e and full tests'): the
// migrations of a drain run side by side as far as each node allows (maxPerNode), not as far as the
// migration controller's worker count allows: a transfer holds its worker from begin to end, and with
// 4 workers a drain of 30 nodes ran 4 transfers at a time (hack/bench-scale, session 14). Six VMs on
// six nodes, each migrated to a node of its own: all six transfers must be in flight together
// (counted on the sim hosts: domains migrating), then every VM runs on its target. Then the limit
// per node and a target's room, as the manager reads them from its index by node.

import assert from 'node:assert/strict';
import { API_VERSION, type Migration, type PhysicalNode, type VirtualNode } from '../../api/types.js';
import { isConditionTrue } from '../../api/conditions.js';
import { simWorld } from '../../drivers/transport/sim-host.js';
import { eventually } from '../placement/fixtures.js';
import { simNode, simVc, startSimControlPlane, type SimControlPlane } from '../controllers/sim-control-plane.js';

const NS = 'mc';
const VMS = 6;

describe('migrations run side by side up to each node\'s limit (simulation only)', function () {
  this.timeout(180_000);
  let cp: SimControlPlane | undefined;
  const world = simWorld();
  const saved = world.behaviour.migrationFixedMs;

  before(async () => {
    cp = await startSimControlPlane('mc-sim', Array.from({ length: 2 * VMS }, (_, i) => simNode(i + 1, 'mc-sim')));
  });
  after(async () => {
    world.behaviour.migrationFixedMs = saved;
    await cp?.stop();
  });

  it(`${VMS} migrations between ${2 * VMS} distinct nodes: all ${VMS} transfers in flight at once, then every VM on its target`, async () => {
    const store = cp!.store;
    // Every node Ready first: Cyclic spreads over the nodes Ready when it places (under load some
    // were still being probed, and it put 6 VMs on 4 nodes).
    await eventually(async () => ((await store.list<PhysicalNode>('PhysicalNode')).items
      .filter((n) => isConditionTrue(n.status?.conditions, 'Ready')).length === 2 * VMS ? true : undefined), 60_000, 'every node Ready');
    await store.create(simVc(NS, 'm', VMS, '10.31.0.0/28', 'Cyclic'));
    await eventually(async () => ((await cp!.ready(NS, 'm')) ? true : undefined), 150_000, 'the VC Ready');
    const vms = (await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items;
    const sources = new Set(vms.map((v) => v.status?.host));
    assert.equal(sources.size, VMS, 'Cyclic put each VM on a node of its own');
    const free = Array.from({ length: 2 * VMS }, (_, i) => `mc-sim${i + 1}`).filter((n) => !sources.has(n));
    // long transfers (every other figure of the sim as it is): they overlap whatever the begins' spread
    world.behaviour.migrationFixedMs = 8_000;
    const targets = new Map(vms.map((v, i) => [v.metadata.name, free[i]!]));
    for (const [vm, to] of targets) {
      await store.create<Migration>({ apiVersion: API_VERSION, kind: 'Migration', metadata: { name: `mig-${vm}`, namespace: NS }, spec: { virtualNode: vm, targetNode: to } });
    }
    // the transfers in flight, sampled on the hosts until every Migration has ended
    let most = 0;
    const ended = async (): Promise<boolean> => (await store.list<Migration>('Migration', { namespace: NS })).items.every((m) => ['Succeeded', 'Failed'].includes(m.status?.phase ?? ''));
    const deadline = Date.now() + 120_000;
    while (!(await ended())) {
      assert.ok(Date.now() < deadline, `migrations not ended in 120 s (at most ${most} in flight at once)`);
      let now = 0;
      for (const host of world.hosts.values()) for (const d of host.domains.values()) if (d.state === 'migrating') now++;
      most = Math.max(most, now);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(most, VMS, `all ${VMS} transfers in flight together (each pair of nodes is free; maxPerNode 2)`);
    for (const m of (await store.list<Migration>('Migration', { namespace: NS })).items) assert.equal(m.status?.phase, 'Succeeded', `${m.metadata.name}: ${m.status?.message}`);
    await eventually(async () => {
      const now = (await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items;
      return now.every((v) => v.status?.host === targets.get(v.metadata.name) && v.spec?.physicalNode === targets.get(v.metadata.name) && v.status?.phase === 'Running') ? true : undefined;
    }, 60_000, 'every VM bound to and running on its target');
  });

  // The node limit and the target's room, as the manager reads them (from its index of VMs and
  // Migrations by node, not a pass over all of them): three VMs of one node migrated to three free
  // nodes run two at a time (maxPerNode on the source), and a VM sent to a node without the memory
  // for it is refused.
  it('three migrations out of one node run at most two at a time; a target without room is refused', async () => {
    const store = cp!.store;
    const occupied = new Set((await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items.map((v) => v.status?.host));
    await store.create(simVc(NS, 'r', 3, '10.31.0.16/28', 'Block'));
    const big = simVc(NS, 'big', 2, '10.31.0.32/28', 'Cyclic');
    await store.create({ ...big, spec: { ...big.spec!, node: { ...big.spec!.node, memoryMiB: 5000 } } });
    await eventually(async () => ((await cp!.ready(NS, 'r')) && (await cp!.ready(NS, 'big')) ? true : undefined), 150_000, 'both VCs Ready');
    const vms = new Map((await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items.map((v) => [v.metadata.name, v]));
    const source = vms.get('r-0')!.status!.host!;
    assert.ok(['r-1', 'r-2'].every((n) => vms.get(n)!.status?.host === source), 'Block put r on one node');
    for (const v of vms.values()) occupied.add(v.status?.host);
    const free = Array.from({ length: 2 * VMS }, (_, i) => `mc-sim${i + 1}`).filter((n) => !occupied.has(n));
    assert.ok(free.length >= 3, `free nodes: ${free.join(', ')}`);
    world.behaviour.migrationFixedMs = 4_000;
    for (const [i, vm] of ['r-0', 'r-1', 'r-2'].entries()) {
      await store.create<Migration>({ apiVersion: API_VERSION, kind: 'Migration', metadata: { name: `out-${vm}`, namespace: NS }, spec: { virtualNode: vm, targetNode: free[i]! } });
    }
    // big-0 onto big-1's node: 5,000 MiB more than the 8,192 MiB it has room for
    await store.create<Migration>({ apiVersion: API_VERSION, kind: 'Migration', metadata: { name: 'full', namespace: NS }, spec: { virtualNode: 'big-0', targetNode: vms.get('big-1')!.status!.host! } });
    let most = 0;
    const outs = async () => (await store.list<Migration>('Migration', { namespace: NS })).items.filter((m) => m.metadata.name.startsWith('out-'));
    const deadline = Date.now() + 120_000;
    while (!(await outs()).every((m) => ['Succeeded', 'Failed'].includes(m.status?.phase ?? ''))) {
      assert.ok(Date.now() < deadline, 'the three migrations not ended in 120 s');
      let now = 0;
      for (const d of world.hosts.get(source)?.domains.values() ?? []) if (d.state === 'migrating') now++;
      most = Math.max(most, now);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(most, 2, 'two transfers at a time out of the source (maxPerNode 2)');
    for (const m of await outs()) assert.equal(m.status?.phase, 'Succeeded', `${m.metadata.name}: ${m.status?.message}`);
    const full = await eventually(async () => {
      const m = await store.get<Migration>({ kind: 'Migration', namespace: NS, name: 'full' });
      return m.status?.phase === 'Failed' ? m : undefined;
    }, 30_000, 'the migration onto the full node refused');
    assert.match(full.status!.message ?? '', /insufficient memory/);
  });
});
