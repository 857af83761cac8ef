// SIMULATION (sim hosts, drivers/transport/sim-*.ts: route tables as state, no packet moves): the
// network/hosts controller reads a VC's subnet as its VMs' addresses do (subnetOf: spec.network's,
// else status.subnet). A VC that names its subnet gets it written into status.subnet as well
// (network/subnets' reservation): that write changes no address and re-plans no node
// (hack/bench-scale 10,000: 2,500 such writes while the VMs started, each re-planning the VC's
// nodes over 10,000 routes). A VC without one gets its VMs' routes when status.subnet is written.

import assert from 'node:assert/strict';
import type { VirtualCluster } from '../../api/types.js';
import { eventually, virtualCluster } from '../placement/fixtures.js';
import { startSimHosts, type SimHosts } from './sim-hosts-fixture.js';

describe('network/hosts and a VC\'s status.subnet (sim hosts)', function () {
  this.timeout(60_000);
  let h: SimHosts;
  /** Reconciles per node that got as far as the node's transport. */
  const plans = new Map<string, number>();
  const total = () => [...plans.values()].reduce((a, b) => a + b, 0);

  before(async () => {
    h = await startSimHosts('vl-net-subnet-', [['n1', '198.18.7.1'], ['n2', '198.18.7.2'], ['n3', '198.18.7.3']], (node, t) => {
      plans.set(node, (plans.get(node) ?? 0) + 1);
      return t;
    });
  });
  after(async () => {
    await h?.close();
  });

  /** status.subnet written as network/subnets does (over the VC as stored now). */
  async function writeStatusSubnet(name: string, subnet: string): Promise<void> {
    await eventually(async () => {
      const vc = await h.store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name });
      try {
        await h.store.updateStatus<VirtualCluster>({ ...vc, status: { ...vc.status, subnet } });
        return true;
      } catch {
        return undefined; // another writer (the virtualcluster controller) got there first
      }
    }, 10_000, `status.subnet of ${name}`);
  }

  it('a named subnet written into status.subnet re-plans no node; a pool subnet written there routes the VMs', async () => {
    await h.store.create<VirtualCluster>({ ...virtualCluster('p', 2, 1, 256), spec: { ...virtualCluster('p', 2, 1, 256).spec!, network: { subnet: '10.81.0.0/29' } } });
    await eventually(async () => ((await h.store.list('VirtualNode')).items.length === 2 ? true : undefined), 20_000, 'the VMs');
    await h.bind('p-0', 'n1');
    await h.bind('p-1', 'n2');
    const routed = { '10.81.0.2': '198.18.7.1', '10.81.0.3': '198.18.7.2' };
    await h.expectRoutes('n3', routed, 'both routed to their nodes');
    // Quiet: no node reconciled over 2 s (the bindings' plans and the paced refresh done).
    for (let last = -1; last !== total();) {
      last = total();
      await new Promise((r) => setTimeout(r, 2_000));
    }
    const quiet = total();

    await writeStatusSubnet('p', '10.81.0.0/29');
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(total(), quiet, `no node re-planned for a status.subnet equal to the spec's (${JSON.stringify(Object.fromEntries(plans))})`);
    assert.deepEqual(h.routesOf('n3'), routed);
    assert.deepEqual(h.routesOf('n1'), { '10.81.0.2': 'dev', '10.81.0.3': '198.18.7.2' });

    // A VC with no subnet of its own: its VM has no address until status.subnet is written.
    await h.store.create<VirtualCluster>(virtualCluster('q', 1, 1, 256));
    await eventually(async () => ((await h.store.list('VirtualNode')).items.length === 3 ? true : undefined), 20_000, 'q\'s VM');
    await h.bind('q-0', 'n3');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(h.routesOf('n1'), { '10.81.0.2': 'dev', '10.81.0.3': '198.18.7.2' }, 'no route to a VM without an address');
    await writeStatusSubnet('q', '10.82.0.0/29');
    await h.expectRoutes('n1', { '10.81.0.2': 'dev', '10.81.0.3': '198.18.7.2', '10.82.0.2': '198.18.7.3' }, 'q-0 routed once its VC has a subnet');
  });
});
