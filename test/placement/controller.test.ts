// The placement controllers in a real manager on the embedded store: remap at resume, re-binding
// after a Succeeded Migration, and freeing the allocation when VMs go. The test plays the runtime
// where the runtime would act (VirtualNode phases, the Migration's status).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import {
  API_VERSION, type Migration, type PhysicalNode, type VirtualCluster, type VirtualNode, type VNPhase,
} from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { MIGRATION_APPLIED } from '../../reconcilers/placement/allocation.js';
import { placementControllers } from '../../reconcilers/placement/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { eventually, physicalNode, virtualCluster, virtualNode } from './fixtures.js';
import { recordHistory } from '../controllers/history.js';

describe('placement controllers in a manager (embedded store)', function () {
  this.timeout(60_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-placement-ctl-'));
    const url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url, {});
    mgr = new ControllerManager({
      store: await openStore(url, {}),
      specs: (cache) => [virtualClusterController(), ...placementControllers(cache)],
      identity: 'test', leaderElection: false, eventCleanupMs: 0,
    });
    await mgr.start();
  });
  afterEach(async () => {
    await mgr.stop();
    await mgr.store.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const vcRef = { kind: 'VirtualCluster', name: 's', namespace: 'default' };
  const bindings = async () => Object.fromEntries((await store.list<VirtualNode>('VirtualNode')).items
    .map((v) => [v.metadata.name, v.spec!.physicalNode]));
  const allocations = async () => Object.fromEntries((await store.list<PhysicalNode>('PhysicalNode')).items
    .map((p) => [p.metadata.name, p.status?.allocated?.vms ?? 0]));
  const placed = async () => (await store.get<VirtualCluster>(vcRef)).status?.conditions?.find((c) => c.type === 'Placed');
  async function setPhases(phase: VNPhase): Promise<void> {
    for (const vn of (await store.list<VirtualNode>('VirtualNode')).items) {
      await store.updateStatus({ ...vn, status: { ...vn.status, phase } });
    }
  }
  async function patchVC(f: (vc: VirtualCluster) => VirtualCluster): Promise<void> {
    await eventually(async () => {
      await store.update(f(await store.get<VirtualCluster>(vcRef)));
      return true;
    }, 10_000, 'the VC update');
  }

  it('a placement change waits while the VMs run and is applied once they are suspended', async () => {
    await store.create(physicalNode('blade1', 4, 8192));
    await store.create(physicalNode('blade2', 4, 8192));
    await store.create(virtualCluster('s', 2, 1, 1024, 'Block', 'Strict'));
    await eventually(async () => ((await placed())?.reason === 'Placed' ? true : undefined), 20_000, 'Placed');
    assert.deepEqual(await bindings(), { 's-0': 'blade1', 's-1': 'blade1' });
    await setPhases('Running');

    await patchVC((vc) => ({ ...vc, spec: { ...vc.spec!, placement: { strategy: 'Cyclic', mode: 'Strict' } } }));
    const pending = await eventually(async () => {
      const c = await placed();
      return c?.reason === 'RemapPending' ? c : undefined;
    }, 20_000, 'RemapPending');
    assert.equal(pending.status, 'True');
    assert.equal(pending.observedGeneration, (await store.get<VirtualCluster>(vcRef)).metadata.generation);
    assert.deepEqual(await bindings(), { 's-0': 'blade1', 's-1': 'blade1' });

    await patchVC((vc) => ({ ...vc, spec: { ...vc.spec!, state: 'Suspended' } }));
    await setPhases('Suspended');
    await eventually(async () => ((await placed())?.reason === 'Placed' ? true : undefined), 20_000, 'the remap');
    assert.deepEqual(await bindings(), { 's-0': 'blade1', 's-1': 'blade2' });
    assert.deepEqual((await store.get<VirtualCluster>(vcRef)).status!.placement, { strategy: 'Cyclic', mode: 'Strict' });
    assert.deepEqual(await allocations(), { blade1: 1, blade2: 1 });
  });

  it('re-binds a VM after its Migration Succeeded, and frees the room of VMs that went', async () => {
    await store.create(physicalNode('blade1', 4, 8192));
    await store.create(physicalNode('blade2', 4, 8192));
    await store.create(virtualCluster('s', 2, 1, 1024, 'Block', 'Strict'));
    await eventually(async () => ((await placed())?.reason === 'Placed' ? true : undefined), 20_000, 'Placed');
    // A user's migration (not through drain): the allocation controller reserves the target.
    await store.create<Migration>({
      apiVersion: API_VERSION, kind: 'Migration', metadata: { name: 'm1', namespace: 'default' },
      spec: { virtualNode: 's-0', targetNode: 'blade2' },
    });
    await eventually(async () => ((await allocations()).blade2 === 1 ? true : undefined), 20_000, 'the reservation on blade2');
    const m = await store.get<Migration>({ kind: 'Migration', name: 'm1', namespace: 'default' });
    await store.updateStatus<Migration>({ ...m, status: { phase: 'Succeeded', sourceNode: 'blade1' } });
    await eventually(async () => ((await bindings())['s-0'] === 'blade2' ? true : undefined), 20_000, 'the re-binding');
    const done = await store.get<Migration>({ kind: 'Migration', name: 'm1', namespace: 'default' });
    assert.equal(done.metadata.annotations?.[MIGRATION_APPLIED], 'true');
    await eventually(async () => {
      const a = await allocations();
      return a.blade1 === 1 && a.blade2 === 1 ? true : undefined;
    }, 20_000, 'allocations 1 and 1');

    // The VMs go (the garbage collector would delete them with the VC): their room is freed.
    for (const vn of (await store.list<VirtualNode>('VirtualNode')).items) {
      await store.delete({ kind: 'VirtualNode', name: vn.metadata.name, namespace: 'default' });
    }
    await store.delete(vcRef);
    await eventually(async () => {
      const a = await allocations();
      return a.blade1 === 0 && a.blade2 === 0 ? true : undefined;
    }, 20_000, 'the allocations to be freed');
  });
});

describe('placement of a new VC whose VirtualNodes do not exist yet (embedded store)', function () {
  this.timeout(60_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager;
  // Placed reasons placement wrote, per VC, in order (its VC status writes through the manager's store).
  const written = new Map<string, string[]>();

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-placement-grace-'));
    const url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url, {});
    const managerStore = await openStore(url, {});
    const recording = new Proxy(managerStore, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop !== 'updateStatus') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        return async (o: VirtualCluster) => {
          const r = o.kind === 'VirtualCluster' ? o.status?.conditions?.find((c) => c.type === 'Placed')?.reason : undefined;
          if (r) written.set(o.metadata.name, [...(written.get(o.metadata.name) ?? []), r]);
          return target.updateStatus(o);
        };
      },
    });
    written.clear();
    // Placement alone: the test makes the VirtualNodes, as the VirtualCluster controller would.
    mgr = new ControllerManager({
      store: recording, specs: (cache) => placementControllers(cache, { vmWaitGraceMs: 3000 }),
      identity: 'test', leaderElection: false, eventCleanupMs: 0,
    });
    await mgr.start();
    await store.create(physicalNode('blade1', 4, 8192));
  });
  afterEach(async () => {
    await mgr.stop();
    await mgr.store.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const placedOf = async (name: string) => (await store.get<VirtualCluster>({ kind: 'VirtualCluster', name, namespace: 'default' }))
    .status?.conditions?.find((c) => c.type === 'Placed');

  it('its VMs made within the grace: bound with no WaitingForVirtualNodes write first', async () => {
    const vc = await store.create(virtualCluster('g', 2, 1, 1024, 'Block', 'Strict'));
    // Placement has seen the VC (its add event) well before its VMs come (the grace ends 2-3 s after
    // the VC was made: creationTimestamp has whole seconds).
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(await placedOf('g'), undefined, 'a Placed condition before the VMs exist, within the grace');
    for (const i of [0, 1]) await store.create(virtualNode(vc, i));
    await eventually(async () => ((await placedOf('g'))?.reason === 'Placed' ? true : undefined), 20_000, 'Placed');
    assert.deepEqual(written.get('g'), ['Placed']);
  });

  it('no VM after the grace: WaitingForVirtualNodes, written once the grace is over', async () => {
    const t0 = Date.now();
    await store.create(virtualCluster('h', 2, 1, 1024, 'Block', 'Strict'));
    const c = await eventually(async () => {
      const p = await placedOf('h');
      return p?.reason === 'WaitingForVirtualNodes' ? p : undefined;
    }, 20_000, 'WaitingForVirtualNodes');
    assert.equal(c.status, 'False');
    // creationTimestamp has whole seconds: the grace ends 2 to 3 s after the VC was made.
    assert.ok(Date.now() - t0 >= 2000, `written ${Date.now() - t0} ms after the VC was made, within the 3,000 ms grace`);
    assert.deepEqual(written.get('h'), ['WaitingForVirtualNodes']);
  });
});

describe('placement sets the finalizers it is given in the binding write (embedded store)', function () {
  this.timeout(60_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager | undefined;
  const FINALIZER = 'example.org/runtime-test';

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-placement-fin-'));
    store = await openStore(`file:${join(dir, 'store.db')}`, {});
  });
  afterEach(async () => {
    await mgr?.stop();
    await mgr?.store.close();
    mgr = undefined;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every stored version of the VC's VirtualNodes, in order, from a run of placement with `bindFinalizers`. */
  async function bindingVersions(bindFinalizers: string[] | undefined): Promise<VirtualNode[]> {
    const history = recordHistory(store, ['VirtualNode'], (await store.list('VirtualNode')).revision + 1);
    const versions = (): VirtualNode[] => history.events.map((e) => e.object as VirtualNode);
    try {
      mgr = new ControllerManager({
        store: await openStore(`file:${join(dir, 'store.db')}`, {}),
        specs: (cache) => [virtualClusterController(), ...placementControllers(cache, { bindFinalizers })],
        identity: 'test', leaderElection: false, eventCleanupMs: 0,
      });
      await mgr.start();
      await store.create(physicalNode('blade1', 4, 8192));
      await store.create(virtualCluster('s', 3, 1, 1024, 'Block', 'Strict'));
      await eventually(async () => {
        const vns = (await store.list<VirtualNode>('VirtualNode')).items;
        return vns.length === 3 && vns.every((v) => v.spec?.physicalNode === 'blade1') ? true : undefined;
      }, 20_000, 'the three VMs bound');
      await eventually(async () => (versions().filter((v) => v.spec?.physicalNode).length >= 3 ? true : undefined), 10_000, 'the bindings watched');
    } finally {
      history.stop();
    }
    return versions();
  }

  it('each VM is bound and given the finalizer in one write, not two', async () => {
    const versions = await bindingVersions([FINALIZER]);
    for (const name of ['s-0', 's-1', 's-2']) {
      const own = versions.filter((v) => v.metadata.name === name);
      const first = own.findIndex((v) => v.spec?.physicalNode);
      assert.ok(first > 0, `${name}: created unbound, then bound`);
      assert.deepEqual(own[first]!.metadata.finalizers, [FINALIZER], `${name}: the binding version carries the finalizer`);
      assert.ok(own.slice(0, first).every((v) => !v.metadata.finalizers?.length), `${name}: no finalizer before its binding`);
    }
    // Nothing else was lost by the write: the VC's label and owner stay.
    const stored = await store.get<VirtualNode>({ kind: 'VirtualNode', name: 's-0', namespace: 'default' });
    assert.equal(stored.metadata.ownerReferences?.[0]?.name, 's');
    assert.equal(stored.spec!.cluster, 's');
  });

  it('given none, it writes no finalizer', async () => {
    const versions = await bindingVersions(undefined);
    assert.ok(versions.some((v) => v.spec?.physicalNode));
    assert.ok(versions.every((v) => !v.metadata.finalizers?.length), 'no finalizer on any version');
  });
});
