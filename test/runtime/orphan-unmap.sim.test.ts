// SIMULATION (sim hosts, drivers/transport/sim-*.ts; the storage side of the activation port as a
// map of what is mapped where): the runtime's orphan controller, once it destroys a domain that
// no VirtualNode wants on that node, unmaps that VM's volumes there through the port
// (volume-activation.ts), so that a SAN snapshot left mapped there neither refuses the VM's
// start elsewhere nor its removal. The port itself runs on full nodes (test/storage/san-drivers.full.test.ts).

import assert from 'node:assert/strict';
import type { ApiObject, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { setCondition } from '../../api/conditions.js';
import { domainNameOf } from '../../api/names.js';
import { objectsContext } from './sim-fixture.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { execOk } from '../../drivers/transport/types.js';
import { orphanController } from '../../reconcilers/runtime/controller.js';
import type { VolumeActivation } from '../../reconcilers/runtime/volume-activation.js';
import { physicalNode, virtualCluster } from '../placement/fixtures.js';

describe('runtime/orphans: a destroyed orphan\'s volumes are unmapped on its node (sim hosts)', function () {
  this.timeout(30_000);

  it('unmaps the VM\'s volumes on the node of the destroyed domain only; a domain of no VM is destroyed without unmapping', async () => {
    const world = new SimWorld({ startMs: 0 });
    const node = (name: string): PhysicalNode => {
      const p = physicalNode(name, 8, 8192);
      return { ...p, spec: { ...p.spec!, hypervisor: 'sim', transport: 'sim', storageRoot: '/san' }, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } };
    };
    const n1 = node('n1');
    const n2 = node('n2');
    const vc = { ...virtualCluster('vc', 1, 1, 128), metadata: { name: 'vc', namespace: 'default', uid: 'u1' } } as VirtualCluster;
    // the VM runs on n2 now; a copy of its domain was left on n1 (e.g. the node came back after a failover)
    const vn = { apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode', metadata: { name: 'vc-0', namespace: 'default' }, spec: { cluster: 'vc', index: 0, physicalNode: 'n2', vcpus: 1, memoryMiB: 128 }, status: { host: 'n2' } } as VirtualNode;
    const objects: ApiObject[] = [n1, n2, vc, vn];
    const transports = { get: (pn: PhysicalNode) => new SimTransport(world.host(pn.metadata.name, { cores: 8, memoryMiB: 8192, storageRoot: '/san' })) };
    const incoming = (name: string) => JSON.stringify({ name, vcpus: 1, memoryMiB: 128 });
    await execOk(transports.get(n1), ['vl-sim', 'domain', 'incoming', incoming(domainNameOf(vn))]);
    await execOk(transports.get(n1), ['vl-sim', 'domain', 'incoming', incoming('default.gone-0')]);
    // what is mapped where: the VM's volumes on n1 (the old copy) and on n2 (where it runs)
    const mapped = new Set(['n1/vc-0', 'n2/vc-0']);
    const volumes: VolumeActivation = {
      activate: async () => assert.fail('an orphan is never started'),
      deactivate: async (c, v, pn) => {
        assert.equal(c.metadata.uid, 'u1');
        mapped.delete(`${pn.metadata.name}/${v.metadata.name}`);
      },
    };
    const events: string[] = [];
    const ctx = objectsContext(objects, events);
    const orphans = orphanController({ transports, volumes, orphanGraceMs: 0 });
    const key = { kind: 'PhysicalNode', name: 'n1' };
    await orphans.reconcile(key, ctx); // seen
    await orphans.reconcile(key, ctx); // destroyed after the grace
    assert.deepEqual([...world.hosts.get('n1')!.domains.keys()], [], 'both orphans destroyed on n1');
    assert.deepEqual([...mapped], ['n2/vc-0'], 'unmapped on n1 only; n2, where the VM runs, keeps its mapping');
    assert.equal(events.filter((e) => e.startsWith('OrphanDestroyed')).length, 2, events.join('\n'));
    assert.deepEqual(events.filter((e) => e.startsWith('UnmapFailed')), []);

    // Wanted domains stay: the VM's own on n2 (bound and on it), and an incoming copy on n1 while
    // a Migration in flight targets n1; once that Migration has Succeeded elsewhere, the copy is an orphan.
    await execOk(transports.get(n2), ['vl-sim', 'domain', 'incoming', incoming(domainNameOf(vn))]);
    await execOk(transports.get(n1), ['vl-sim', 'domain', 'incoming', incoming(domainNameOf(vn))]);
    const mig = { apiVersion: 'virtualinux.org/v1alpha1', kind: 'Migration', metadata: { name: 'm1', namespace: 'default' },
      spec: { virtualNode: 'vc-0', targetNode: 'n1' }, status: { phase: 'Running' } } as ApiObject;
    objects.push(mig);
    for (const k of ['n1', 'n2']) for (let i = 0; i < 2; i++) await orphans.reconcile({ kind: 'PhysicalNode', name: k }, ctx);
    assert.deepEqual([...world.hosts.get('n2')!.domains.keys()], ['default.vc-0'], 'the VM\'s own domain stays');
    assert.deepEqual([...world.hosts.get('n1')!.domains.keys()], ['default.vc-0'], 'the migration target\'s copy stays');
    objects.splice(objects.indexOf(mig), 1, { ...mig, status: { phase: 'Failed' } } as ApiObject);
    for (let i = 0; i < 2; i++) await orphans.reconcile(key, ctx);
    assert.deepEqual([...world.hosts.get('n1')!.domains.keys()], [], 'no Migration in flight: the copy is an orphan');
  });
});
