// SIMULATION (sim hosts, drivers/transport/sim-*.ts: route tables as state, no packet moves): the
// network/hosts controller in a real manager on the embedded store keeps every VM's network
// between the changes its watches let through (hack/bench-scale: recomputing it on every VM
// status write made each node reconcile a pass over every VM). What must still reach every node:
// a VM bound, moved, its VC's subnet changed, a VM deleted; a status write changes nothing.

import type { VirtualCluster, VirtualNode } from '../../api/types.js';
import { eventually, virtualCluster } from '../placement/fixtures.js';
import { startSimHosts, type SimHosts } from './sim-hosts-fixture.js';

describe('network/hosts keeps VM networks between relevant changes (sim hosts)', function () {
  this.timeout(60_000);
  let h: SimHosts;

  before(async () => {
    h = await startSimHosts('vl-net-memo-', [['n1', '198.18.5.1'], ['n2', '198.18.5.2']]);
  });
  after(async () => {
    await h?.close();
  });

  it('routes follow bindings, moves, a subnet change and deletions; a status write moves nothing', async () => {
    const vc = await h.store.create<VirtualCluster>({ ...virtualCluster('m', 2, 1, 256), spec: { ...virtualCluster('m', 2, 1, 256).spec!, network: { subnet: '10.77.0.0/29' } } });
    await eventually(async () => ((await h.store.list('VirtualNode')).items.length === 2 ? true : undefined), 20_000, 'the VMs');
    await h.bind('m-0', 'n1');
    await h.expectRoutes('n1', { '10.77.0.2': 'dev' }, 'm-0 routed on its node');
    await h.expectRoutes('n2', { '10.77.0.2': '198.18.5.1' }, 'm-0 routed to its node');
    await h.bind('m-1', 'n2');
    await h.expectRoutes('n1', { '10.77.0.2': 'dev', '10.77.0.3': '198.18.5.2' }, 'm-1 routed to its node');
    // A status write the network does not read: nothing changes (and nothing is undone).
    const v0 = await h.vm('m-0');
    await h.store.updateStatus<VirtualNode>({ ...v0, status: { ...v0.status, message: 'busy elsewhere' } });
    // The VM moves (its host changes): both nodes follow.
    const v1 = await h.vm('m-1');
    await h.store.updateStatus<VirtualNode>({ ...v1, status: { ...v1.status, host: 'n1' } });
    // (n1 holds both VMs of m now: n2 reaches m's subnet through n1 in one route)
    await h.expectRoutes('n2', { '10.77.0.0/29': '198.18.5.1' }, 'm-1 moved to n1');
    await h.expectRoutes('n1', { '10.77.0.2': 'dev', '10.77.0.3': 'dev' }, 'm-1 local on n1');
    // The VC's subnet changes: every VM's address does.
    const cur = await h.store.get<VirtualCluster>({ kind: 'VirtualCluster', name: vc.metadata.name, namespace: 'default' });
    await h.store.update<VirtualCluster>({ ...cur, spec: { ...cur.spec!, network: { subnet: '10.78.0.0/29' } } });
    await h.expectRoutes('n2', { '10.78.0.0/29': '198.18.5.1' }, 'the new subnet');
    // A VM deleted (the VC scaled down): its routes go everywhere.
    const c2 = await h.store.get<VirtualCluster>({ kind: 'VirtualCluster', name: 'm', namespace: 'default' });
    await h.store.update<VirtualCluster>({ ...c2, spec: { ...c2.spec!, nodes: 1 } });
    await h.expectRoutes('n2', { '10.78.0.2': '198.18.5.1' }, 'm-1 gone');
    await h.expectRoutes('n1', { '10.78.0.2': 'dev' }, 'm-1 gone from its node');
  });
});
