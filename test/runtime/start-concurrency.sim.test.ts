// SIMULATION (sim hosts: no guest is real): the VMs of a cluster start side by side, as many at
// once as the runtime has workers (RUNTIME_WORKERS), not 16: a start holds its worker while the
// hypervisor creates the domain, and at 10,000 VMs on 1,000 sim nodes 16 workers went through ~10
// VMs a second (hack/bench-scale, session 15). 24 VMs on 8 nodes whose domains take 5 s to
// create: all 24 creations are in flight together (counted on the sim hosts: a domain created but
// not yet running), then every VM runs.

import assert from 'node:assert/strict';
import type { VirtualNode } from '../../api/types.js';
import { simWorld } from '../../drivers/transport/sim-host.js';
import { RUNTIME_WORKERS } from '../../reconcilers/runtime/controller.js';
import { eventually } from '../placement/fixtures.js';
import { simNode, simVc, startSimControlPlane, type SimControlPlane } from '../controllers/sim-control-plane.js';

const NS = 'sc';
const VMS = 24;
const NODES = 8;

describe('VMs start side by side beyond 16 at once (simulation only)', function () {
  this.timeout(180_000);
  let cp: SimControlPlane | undefined;
  const world = simWorld();
  const saved = world.behaviour.startMs;

  before(async () => {
    world.behaviour.startMs = 5_000;
    cp = await startSimControlPlane('sc-sim', Array.from({ length: NODES }, (_, i) => simNode(i + 1, 'sc-sim')));
  });
  after(async () => {
    world.behaviour.startMs = saved;
    await cp?.stop();
  });

  it(`${VMS} VMs on ${NODES} nodes: all ${VMS} domain creations in flight at once, then every VM Running`, async () => {
    assert.ok(RUNTIME_WORKERS >= VMS, 'the runtime has a worker for each');
    const store = cp!.store;
    await store.create(simVc(NS, 's', VMS, '10.33.0.0/27', 'Cyclic'));
    const creating = (): number => {
      let n = 0;
      for (const [name, host] of world.hosts) {
        if (!name.startsWith('sc-sim')) continue;
        for (const d of host.domains.values()) if (d.state === 'paused' && d.readyAtMs === Infinity) n++;
      }
      return n;
    };
    const running = async (): Promise<number> => (await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items
      .filter((v) => v.status?.phase === 'Running' && v.status.host === v.spec?.physicalNode).length;
    let most = 0;
    const until = Date.now() + 150_000;
    for (let up = 0; up < VMS; up = await running()) {
      assert.ok(Date.now() < until, `${up} of ${VMS} Running after 150 s (at most ${most} creations at once)`);
      for (let i = 0; i < 10; i++) {
        most = Math.max(most, creating());
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal(most, VMS, `all ${VMS} creations in flight together (${NODES} nodes, 3 VMs each)`);
    await eventually(async () => ((await cp!.ready(NS, 's')) ? true : undefined), 60_000, 'the VC Ready');
  });
});
