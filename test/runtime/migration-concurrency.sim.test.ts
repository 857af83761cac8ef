// SIMULATION (sim hosts: no guest is real; the real migrations are the e2e and full tests'): the
// migrations of a drain run side by side as far as each node allows (maxPerNode), not as far as the
// migration controller's worker count allows: a transfer holds its worker from begin to end, and with
// 4 workers a drain of 30 nodes ran 4 transfers at a time (hack/bench-scale, session 14). Six VMs on
// six nodes, each migrated to a node of its own: all six transfers must be in flight together
// (counted on the sim hosts: domains migrating), then every VM runs on its target.

import assert from 'node:assert/strict';
import { API_VERSION, type Migration, type VirtualNode } from '../../api/types.js';
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
});
