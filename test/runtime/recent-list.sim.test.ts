// SIMULATION (a sim host): HypervisorDrivers.recentList, the one list of a node the runtime's
// pollers share (node-domains rounds list afresh, the orphans controller takes a recent one): how
// many lists the node actually ran, and what each caller got.

import assert from 'node:assert/strict';
import { setCondition } from '../../api/conditions.js';
import type { ApiObject, PhysicalNode, VirtualNode } from '../../api/types.js';
import { objectsContext } from './sim-fixture.js';
import { orphanController } from '../../reconcilers/runtime/controller.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { execOk, TransportError, type ExecOptions, type ExecResult } from '../../drivers/transport/types.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';
import { physicalNode } from '../placement/fixtures.js';

/** A sim node's transport that counts the domain lists it ran, and can be cut off. */
class CountingTransport extends SimTransport {
  lists = 0;
  down = false;
  override exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    if (argv[0] === 'vl-sim' && argv[1] === 'domain' && argv[2] === 'list') this.lists++;
    if (this.down) return Promise.reject(new TransportError(`${this.host}: cut off`));
    return super.exec(argv, opts);
  }
}

describe('HypervisorDrivers.recentList (sim host)', () => {
  it('shares a list started at most maxAgeMs ago or in flight, lists afresh after that or with 0, and never shares a failed one', async () => {
    const world = new SimWorld({ startMs: 0 });
    const t = new CountingTransport(world.host('n1', { cores: 8, memoryMiB: 8192, storageRoot: '/san' }));
    const pn0 = physicalNode('n1', 8, 8192);
    const pn: PhysicalNode = { ...pn0, spec: { ...pn0.spec!, hypervisor: 'sim', transport: 'sim', storageRoot: '/san' } };
    const drivers = new HypervisorDrivers({ get: () => t });

    // two at once: one list in flight, shared
    const [a, b] = await Promise.all([drivers.recentList(pn, 0, 1_000), drivers.recentList(pn, 5_000, 1_000)]);
    assert.deepEqual(a, b);
    assert.equal(t.lists, 1);
    // within maxAgeMs of its start: shared; past it, or with 0: a new list
    await drivers.recentList(pn, 5_000, 6_000);
    assert.equal(t.lists, 1);
    await drivers.recentList(pn, 5_000, 6_001);
    assert.equal(t.lists, 2);
    await drivers.recentList(pn, 0, 6_001);
    assert.equal(t.lists, 3);
    // a failed list fails its callers and is not handed to the next one
    t.down = true;
    await assert.rejects(drivers.recentList(pn, 0, 7_000), /cut off/);
    t.down = false;
    assert.deepEqual(await drivers.recentList(pn, 5_000, 7_000), []);
    assert.equal(t.lists, 5);
  });

  it('the orphans controller decides on a fresh list: a recent one holding a domain that has moved since raises no OrphanDomain', async () => {
    const world = new SimWorld({ startMs: 0 });
    const t = new CountingTransport(world.host('n1', { cores: 8, memoryMiB: 8192, storageRoot: '/san' }));
    const pn0 = physicalNode('n1', 8, 8192);
    const pn: PhysicalNode = { ...pn0, spec: { ...pn0.spec!, hypervisor: 'sim', transport: 'sim', storageRoot: '/san' },
      status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } };
    const drivers = new HypervisorDrivers({ get: () => t });
    // the VM ran on n1; the node-domains round listed it there; then it migrated to n2: its copy
    // on n1 is gone and the cache has it on n2
    await execOk(t, ['vl-sim', 'domain', 'incoming', JSON.stringify({ name: 'default.vc-0', vcpus: 1, memoryMiB: 128 })]);
    assert.deepEqual((await drivers.recentList(pn, 0)).map((d) => d.name), ['default.vc-0']);
    await execOk(t, ['vl-sim', 'domain', 'destroy', 'default.vc-0']);
    const vn = { apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode', metadata: { name: 'vc-0', namespace: 'default' },
      spec: { cluster: 'vc', index: 0, physicalNode: 'n2', vcpus: 1, memoryMiB: 128 }, status: { host: 'n2', phase: 'Running' } } as VirtualNode;
    const objects: ApiObject[] = [pn, vn];
    const events: string[] = [];
    const ctx = objectsContext(objects, events);
    const orphans = orphanController({ transports: { get: () => t }, drivers, orphanGraceMs: 60_000 });
    const before = t.lists;
    await orphans.reconcile({ kind: 'PhysicalNode', name: 'n1' }, ctx);
    assert.deepEqual(events, [], 'no OrphanDomain for a domain that is gone');
    assert.equal(t.lists, before + 1, 'the recent list hinted at an orphan: one fresh list decided');
    // nothing unwanted in a recent list: no list of its own
    await orphans.reconcile({ kind: 'PhysicalNode', name: 'n1' }, ctx);
    assert.equal(t.lists, before + 1);
    assert.deepEqual(events, []);
  });
});
