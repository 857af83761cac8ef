// Placement of many VCs at once (embedded store): its workers read in parallel; the bindings of
// the VCs ready meanwhile are planned one after another and written in one group batch
// (GroupBinder in controller.ts). So no batch conflicts, fewer binding batches than VCs, no node
// is overcommitted, and the result is that of one VC after another: Block still fills the first
// nodes. (A version that planned around the nodes in flight spread Block VCs over later nodes and
// put both VMs of a 2-VM Cyclic VC on one node of two: the network e2e saw it.)

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import { ConflictError, type BatchOp, type Store, type WriteOptions } from '../../api/store/types.js';
import type { ApiObject, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { placementControllers } from '../../reconcilers/placement/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { eventually, physicalNode, virtualCluster } from './fixtures.js';

describe('placement of VCs at once (embedded store)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: Store;
  let managerStore: Store;
  let mgr: ControllerManager | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-placement-concurrent-'));
    store = await openStore(`file:${join(dir, 'store.db')}`, {});
    managerStore = await openStore(`file:${join(dir, 'store.db')}`, {});
  });
  after(async () => {
    await mgr?.stop();
    await managerStore.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('8 VCs at once: their bindings in fewer batches than VCs (none conflicting), every VC Placed, placed as one after another (Block fills n1-n4)', async () => {
    const vcs = 8;
    let bindings = 0;
    let conflicts = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    // Each binding batch (an update of VirtualNodes) takes 150 ms on its way: plans overlap.
    const slow = new Proxy(managerStore, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop !== 'batch') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        return async (ops: BatchOp[], opts?: WriteOptions): Promise<ApiObject[]> => {
          if (!ops.some((o) => o.op === 'update' && o.object.kind === 'VirtualNode')) return target.batch(ops, opts);
          bindings++;
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          try {
            await new Promise((r) => setTimeout(r, 150));
            return await target.batch(ops, opts);
          } catch (err) {
            if (err instanceof ConflictError) conflicts++;
            throw err;
          } finally {
            inFlight--;
          }
        };
      },
    });
    for (let i = 1; i <= 8; i++) await store.create(physicalNode(`n${i}`, 4, 8192));
    // The VCs and their VMs exist before placement runs: every VC is ready to plan at once.
    mgr = new ControllerManager({ store: managerStore, specs: () => [virtualClusterController()], identity: 'vc', leaderElection: false, eventCleanupMs: 0 });
    await mgr.start();
    for (let i = 0; i < vcs; i++) await store.create(virtualCluster(`c${i}`, 2, 1, 1024, 'Block', 'Strict'));
    await eventually(async () => ((await store.list<VirtualNode>('VirtualNode')).items.length === vcs * 2 ? true : undefined), 30_000, 'the VMs made');
    await mgr.stop();
    mgr = new ControllerManager({ store: slow, specs: (cache) => [virtualClusterController(), ...placementControllers(cache)], identity: 'pl', leaderElection: false, eventCleanupMs: 0 });
    await mgr.start();

    await eventually(async () => {
      const all = (await store.list<VirtualCluster>('VirtualCluster')).items;
      return all.every((v) => v.status?.conditions?.find((c) => c.type === 'Placed')?.reason === 'Placed') ? true : undefined;
    }, 60_000, 'every VC Placed');
    const vms = (await store.list<VirtualNode>('VirtualNode')).items;
    assert.ok(vms.every((v) => v.spec?.physicalNode), 'every VM bound');
    for (const n of (await store.list<PhysicalNode>('PhysicalNode')).items) {
      const on = vms.filter((v) => v.spec?.physicalNode === n.metadata.name);
      assert.ok(on.length <= 4, `${n.metadata.name} holds ${on.length} VMs of 1 vCPU on 4 cores`);
    }
    assert.equal(conflicts, 0, 'a binding batch conflicted and was planned again');
    // One batch each was 8 round trips one after another for VCs that all want n1 (session 10).
    assert.ok(bindings < vcs, `${bindings} binding batches for ${vcs} VCs: not grouped`);
    // One after another, Block Strict with 2 VMs of 1 vCPU per VC on 4-core nodes: n1-n4 full, n5-n8 empty.
    const perNode = new Map<string, number>();
    for (const v of vms) perNode.set(v.spec!.physicalNode!, (perNode.get(v.spec!.physicalNode!) ?? 0) + 1);
    assert.deepEqual([...perNode].sort(), [['n1', 4], ['n2', 4], ['n3', 4], ['n4', 4]], 'Block filled the first nodes');
  });

  it('VCs made while placement runs: each VM bound once, never moved because its node was in another batch', async () => {
    await mgr?.stop();
    const bound = new Map<string, string[]>();
    const watching = new Proxy(managerStore, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop !== 'batch') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        return async (ops: BatchOp[], opts?: WriteOptions): Promise<ApiObject[]> => {
          await new Promise((r) => setTimeout(r, 20));
          const out = await target.batch(ops, opts);
          for (const o of ops) {
            if (o.op !== 'update' || o.object.kind !== 'VirtualNode') continue;
            const name = o.object.metadata.name;
            bound.set(name, [...(bound.get(name) ?? []), (o.object as VirtualNode).spec!.physicalNode!]);
          }
          return out;
        };
      },
    });
    for (let i = 9; i <= 12; i++) await store.create(physicalNode(`n${i}`, 32, 65536));
    mgr = new ControllerManager({ store: watching, specs: (cache) => [virtualClusterController(), ...placementControllers(cache)], identity: 'pl2', leaderElection: false, eventCleanupMs: 0 });
    await mgr.start();
    for (let i = 0; i < 16; i++) await store.create(virtualCluster(`d${i}`, 4, 1, 256, i % 2 ? 'Cyclic' : 'Block', 'Strict'));
    await eventually(async () => {
      const all = (await store.list<VirtualCluster>('VirtualCluster')).items;
      return all.every((v) => v.status?.conditions?.find((c) => c.type === 'Placed')?.reason === 'Placed') ? true : undefined;
    }, 60_000, 'every VC Placed');
    const vms = (await store.list<VirtualNode>('VirtualNode')).items.filter((v) => v.spec?.cluster.startsWith('d'));
    assert.equal(vms.length, 64);
    for (const v of vms) assert.deepEqual(bound.get(v.metadata.name), [v.spec!.physicalNode], `${v.metadata.name} bound more than once`);
  });
});
