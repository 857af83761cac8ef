import assert from 'node:assert/strict';
import type { ApiObject } from '../../api/types.js';
import {
  SYNC_SOURCE_ANNOTATION, annotateForSource, deriveSourceName, inventoryKey, orderForApply, planPrune,
  type InventoryEntry, type PrunePlanInput,
} from '../../reconcilers/gitops/plan-sync.js';

const SRC = 'default/cluster';

function live(ref: InventoryEntry, source: string | null = SRC): ApiObject {
  return {
    apiVersion: 'virtualinux.org/v1alpha1',
    kind: ref.kind,
    metadata: {
      name: ref.name,
      ...(ref.namespace ? { namespace: ref.namespace } : {}),
      ...(source ? { annotations: { [SYNC_SOURCE_ANNOTATION]: source } } : {}),
      labels: { team: 'a' },
    },
  };
}

const pn1: InventoryEntry = { kind: 'PhysicalNode', name: 'blade1' };
const pn2: InventoryEntry = { kind: 'PhysicalNode', name: 'blade2' };
const ost: InventoryEntry = { kind: 'OSTemplate', name: 'busybox' };
const vcA: InventoryEntry = { kind: 'VirtualCluster', namespace: 'default', name: 'a' };
const vcB: InventoryEntry = { kind: 'VirtualCluster', namespace: 'default', name: 'b' };
const mig: InventoryEntry = { kind: 'Migration', namespace: 'default', name: 'm' };

function input(p: Partial<PrunePlanInput> & { liveObjs?: ApiObject[] }): PrunePlanInput {
  const map = new Map<string, ApiObject>();
  for (const o of p.liveObjs ?? []) {
    map.set(inventoryKey({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name }), o);
  }
  return {
    inventory: p.inventory ?? [],
    desired: p.desired ?? [],
    live: map,
    sourceId: SRC,
    prune: p.prune ?? true,
    allowEmpty: p.allowEmpty ?? false,
  };
}

describe('gitops planPrune', () => {
  const cases: {
    name: string;
    in: Partial<PrunePlanInput> & { liveObjs?: ApiObject[] };
    del?: InventoryEntry[];
    orphaned?: InventoryEntry[];
    forgotten?: InventoryEntry[];
    inventory?: InventoryEntry[];
    refused?: string;
  }[] = [
    {
      name: 'first sync: nothing to prune, the inventory is what was applied',
      in: { inventory: [], desired: [pn1, vcA] },
      del: [], orphaned: [], forgotten: [], inventory: [pn1, vcA],
    },
    {
      name: 'an object that left the directory is pruned when it is still ours',
      in: { inventory: [pn1, vcA, vcB], desired: [pn1, vcA], liveObjs: [live(vcB)] },
      del: [vcB], orphaned: [], forgotten: [], inventory: [pn1, vcA],
    },
    {
      name: 'without prune it stays, and stays in the inventory for a later prune',
      in: { prune: false, inventory: [pn1, vcA, vcB], desired: [pn1, vcA], liveObjs: [live(vcB)] },
      del: [], orphaned: [vcB], forgotten: [], inventory: [pn1, vcA, vcB],
    },
    {
      name: 'an inventory object already gone from the store is forgotten',
      in: { inventory: [pn1, vcB], desired: [pn1], liveObjs: [] },
      del: [], orphaned: [], forgotten: [vcB], inventory: [pn1],
    },
    {
      name: 're-created by hand without the annotation: forgotten, never pruned',
      in: { inventory: [pn1, vcB], desired: [pn1], liveObjs: [live(vcB, null)] },
      del: [], orphaned: [], forgotten: [vcB], inventory: [pn1],
    },
    {
      name: 'marked by another source: forgotten, never pruned',
      in: { inventory: [pn1, vcB], desired: [pn1], liveObjs: [live(vcB, 'default/other')] },
      del: [], orphaned: [], forgotten: [vcB], inventory: [pn1],
    },
    {
      name: 'an object outside the inventory is never pruned, even with our annotation and labels',
      in: { inventory: [pn1], desired: [pn1], liveObjs: [live(vcB)] },
      del: [], orphaned: [], forgotten: [], inventory: [pn1],
    },
    {
      name: 'deletes run in reverse dependency order',
      in: {
        inventory: [pn2, ost, vcA, mig], desired: [pn1],
        liveObjs: [live(pn2), live(ost), live(vcA), live(mig)],
      },
      del: [mig, vcA, ost, pn2], orphaned: [], forgotten: [], inventory: [pn1],
    },
    {
      name: 'an empty directory with prune is refused and deletes nothing',
      in: { inventory: [pn1, vcA], desired: [], liveObjs: [live(pn1), live(vcA)] },
      refused: 'EmptySource',
    },
    {
      name: 'an empty directory with allowEmpty prunes everything that is ours',
      in: { allowEmpty: true, inventory: [pn1, vcA], desired: [], liveObjs: [live(pn1), live(vcA)] },
      del: [vcA, pn1], orphaned: [], forgotten: [], inventory: [],
    },
    {
      name: 'an empty directory without prune only orphans',
      in: { prune: false, inventory: [pn1], desired: [], liveObjs: [live(pn1)] },
      del: [], orphaned: [pn1], forgotten: [], inventory: [pn1],
    },
    {
      name: 'an empty directory whose inventory objects are all gone is not refused',
      in: { inventory: [pn1], desired: [], liveObjs: [] },
      del: [], orphaned: [], forgotten: [pn1], inventory: [],
    },
    {
      name: 'duplicate entries in the inventory or the directory count once',
      in: { inventory: [pn1, pn1, vcB], desired: [pn1, pn1], liveObjs: [live(vcB)] },
      del: [vcB], orphaned: [], forgotten: [], inventory: [pn1],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planPrune(input(c.in));
      if (c.refused) {
        assert.equal(plan.refused, true);
        assert.equal(plan.refused && plan.reason, c.refused);
        assert.match(plan.refused ? plan.message : '', /--allow-empty/);
        return;
      }
      assert.equal(plan.refused, false);
      if (plan.refused) return;
      assert.deepEqual(plan.delete, c.del);
      assert.deepEqual(plan.orphaned, c.orphaned);
      assert.deepEqual(plan.forgotten, c.forgotten);
      assert.deepEqual(plan.inventory, c.inventory);
    });
  }
});

describe('gitops orderForApply', () => {
  it('applies PhysicalNodes and OSTemplates before VirtualClusters, then the rest, stably', () => {
    const objs = [mig, vcA, ost, pn1, { kind: 'Volume', name: 'v' }, vcB, pn2];
    assert.deepEqual(orderForApply(objs), [pn1, pn2, ost, vcA, vcB, mig, { kind: 'Volume', name: 'v' }]);
  });
});

describe('gitops deriveSourceName and annotateForSource', () => {
  const table: [string, string][] = [
    ['/srv/manifests', 'manifests'],
    ['/srv/Cluster Manifests/', 'cluster-manifests'],
    ['./a_b.c', 'a-b-c'],
    [`/x/${'y'.repeat(80)}`, 'y'.repeat(63)],
  ];
  for (const [dir, name] of table) {
    it(`${dir} -> ${name}`, () => assert.equal(deriveSourceName(dir), name));
  }
  it('a directory name with no usable character gets a stable hashed name', () => {
    const n = deriveSourceName('/srv/___');
    assert.match(n, /^source-[0-9a-f]{10}$/);
    assert.equal(deriveSourceName('/srv/___'), n);
    assert.notEqual(deriveSourceName('/opt/___'), n);
  });
  it('annotates a copy and keeps the other annotations', () => {
    const o = live(vcA, null);
    o.metadata.annotations = { keep: 'me' };
    const a = annotateForSource(o, SRC);
    assert.deepEqual(a.metadata.annotations, { keep: 'me', [SYNC_SOURCE_ANNOTATION]: SRC });
    assert.deepEqual(o.metadata.annotations, { keep: 'me' });
  });
});
