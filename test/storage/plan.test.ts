// planStorage, table-tested without I/O: each row is an observed state and the actions and
// conditions it must lead to.

import assert from 'node:assert/strict';
import type { OSTemplate, Volume } from '../../api/types.js';
import {
  ROLLBACK_ANNOTATION,
  ROLLBACK_HOLD_MS,
  STORAGE_FINALIZER,
  desiredVolumes,
  planStorage,
  rollbackHoldMs,
  rollbackMark,
  volumeObject,
  type StorageObservation,
} from '../../reconcilers/storage/plan.js';
import { pickStorageNode, storageNodeFor, storageNodes } from '../../reconcilers/storage/controller.js';
import { osTemplate, storageNode, storageVc } from './storage-fixtures-objects.js';

function vcOf(extra: Parameters<typeof storageVc>[3] = {}, meta: { finalizers?: string[]; deletionTimestamp?: string } = { finalizers: [STORAGE_FINALIZER] }) {
  const vc = storageVc('s', 2, 'base', extra);
  vc.metadata = { ...vc.metadata, uid: 'u1', generation: 1, ...meta };
  return vc;
}

/** Every desired volume as an object, Ready at `rev` (originals and snapshots), present on disk. */
function readyWorld(rev = 1, configRev = 'r', configRevIn: 'status' | 'annotation' = 'status'): { volumes: Volume[]; present: Record<string, boolean> } {
  const vc = vcOf();
  const volumes = desiredVolumes(vc).map((d) => {
    const v = volumeObject(vc, d);
    v.status = { phase: 'Ready', path: `/san/${d.name}`, ...(d.role === 'original' || d.role === 'snapshot' ? { templateRevision: rev } : {}) };
    // A config volume's revision: in its status, or (made by a version before that) its annotation.
    if (d.role === 'config' && configRevIn === 'status') v.status.configRevision = configRev;
    if (d.role === 'config' && configRevIn === 'annotation') v.metadata.annotations = { 'virtualinux.org/config-revision': configRev };
    return v;
  });
  return { volumes, present: Object.fromEntries(volumes.map((v) => [v.metadata.name, true])) };
}

function obs(o: Partial<StorageObservation>): StorageObservation {
  return {
    vc: vcOf(), template: osTemplate('base', '/san/t.qcow2', 1) as OSTemplate, volumes: [], present: {},
    vmsActive: false, subnet: '10.10.1.0/24', configRevisions: { 0: 'r', 1: 'r' },
    vcConfigCurrent: 'x', vcConfigDesired: 'x', usageDue: false, ...o,
  };
}

/** `type` or `type:name` or `type:name,name` (a stage's volumes in one action). */
const types = (p: ReturnType<typeof planStorage>) => p.actions.map((a) => {
  if ('name' in a) return `${a.type}:${a.name}`;
  if (a.type === 'provision' || a.type === 'remove') return `${a.type}:${a.names.join(',')}`;
  if (a.type === 'writeConfig') return `${a.type}:${a.volumes.map((v) => `${v.name}@${v.index}`).join(',')}`;
  return a.type;
});
const cond = (p: ReturnType<typeof planStorage>, t: string) => p.conditions.find((c) => c.type === t);

describe('planStorage', () => {
  it('a new VC: finalizer, every object first, then the original and what needs no original, a stage per action', () => {
    const p = planStorage(obs({ vc: vcOf({}, {}) }));
    assert.deepEqual(types(p), [
      'addFinalizer', 'createObjects', 'provision:s-original', 'provision:s-0-swap,s-1-swap',
      'writeConfig:s-0-config@0,s-1-config@1', 'provision:s-shared',
    ]);
    const created = p.actions.find((a) => a.type === 'createObjects');
    assert.equal(created?.type === 'createObjects' && created.volumes.length, 8);
    assert.equal(cond(p, 'StorageReady')?.reason, 'Provisioning');
  });

  it('once the original is ready: the snapshots, and whatever else is missing', () => {
    const w = readyWorld();
    const present = { 's-original': true };
    const volumes = w.volumes.map((v) => (v.metadata.name === 's-original' ? v : { ...v, status: { phase: 'Pending' as const } }));
    const p = planStorage(obs({ volumes, present }));
    assert.deepEqual(types(p), [
      'provision:s-0-disk,s-1-disk', 'provision:s-0-swap,s-1-swap', 'writeConfig:s-0-config@0,s-1-config@1', 'provision:s-shared',
    ]);
  });

  it('everything ready: StorageReady=True; vc.json and usage only when due', () => {
    const w = readyWorld();
    const p = planStorage(obs(w));
    assert.deepEqual(types(p), []);
    assert.equal(cond(p, 'StorageReady')?.status, 'True');
    assert.deepEqual(types(planStorage(obs({ ...w, vcConfigCurrent: undefined, usageDue: true }))), ['writeVcConfig', 'refreshUsage']);
  });

  it('a volume whose file vanished is provisioned again; a changed config is rewritten', () => {
    const w = readyWorld();
    assert.deepEqual(types(planStorage(obs({ ...w, present: { ...w.present, 's-1-swap': false } }))), ['provision:s-1-swap']);
    assert.deepEqual(types(planStorage(obs({ ...w, configRevisions: { 0: 'r', 1: 'new' } }))), ['writeConfig:s-1-config@1']);
  });

  it('a config volume\'s revision is read from its status, else from the annotation older versions wrote', () => {
    for (const where of ['status', 'annotation'] as const) {
      const w = readyWorld(1, 'r', where);
      assert.deepEqual(types(planStorage(obs(w))), [], `${where}: up to date, nothing to write`);
      assert.deepEqual(types(planStorage(obs({ ...w, configRevisions: { 0: 'new', 1: 'r' } }))), ['writeConfig:s-0-config@0'], where);
    }
    // The status wins over a stale annotation.
    const w = readyWorld(1, 'r', 'status');
    for (const v of w.volumes) if (v.spec?.role === 'config') v.metadata.annotations = { 'virtualinux.org/config-revision': 'old' };
    assert.deepEqual(types(planStorage(obs(w))), []);
  });

  it('no subnet yet: configs wait, StorageReady says why', () => {
    const w = readyWorld();
    const volumes = w.volumes.map((v) => (v.spec?.role === 'config' ? { ...v, status: { phase: 'Pending' as const } } : v));
    const p = planStorage(obs({ volumes, present: w.present, subnet: undefined, configRevisions: {} }));
    assert.deepEqual(types(p), []);
    assert.equal(cond(p, 'StorageReady')?.reason, 'WaitingForSubnet');
    assert.ok(p.requeueAfterMs);
  });

  it('missing OSTemplate: TemplateNotFound and no volumes', () => {
    const p = planStorage(obs({ template: undefined }));
    assert.deepEqual(types(p), []);
    assert.deepEqual(cond(p, 'StorageReady'), {
      type: 'StorageReady', status: 'False', reason: 'TemplateNotFound', message: 'OSTemplate "base" does not exist; create it or fix spec.template',
    });
  });

  it('a new template revision: Running => UpdatePending, disks untouched', () => {
    const p = planStorage(obs({ ...readyWorld(1), template: osTemplate('base', '/san/t.qcow2', 2) }));
    assert.deepEqual(types(p), []);
    assert.equal(cond(p, 'UpdatePending')?.status, 'True');
  });

  it('a new template revision: Stopped => Warning event, snapshots then original invalidated', () => {
    const p = planStorage(obs({ ...readyWorld(1), vc: vcOf({ state: 'Stopped' }), template: osTemplate('base', '/san/t.qcow2', 2) }));
    assert.deepEqual(types(p), ['event', 'invalidate']);
    const inv = p.actions[1]!;
    assert.deepEqual(inv.type === 'invalidate' && inv.names, ['s-0-disk', 's-1-disk', 's-original']);
    assert.equal(p.actions[0]!.type === 'event' && p.actions[0]!.eventType, 'Warning');
  });

  it('Stopped but a VM still up counts as running: no reset', () => {
    const p = planStorage(obs({ ...readyWorld(1), vc: vcOf({ state: 'Stopped' }), vmsActive: true, template: osTemplate('base', '/s', 2) }));
    assert.deepEqual(types(p), []);
    assert.equal(cond(p, 'UpdatePending')?.status, 'True');
  });

  it('after a crash mid-update: a snapshot older than the original is reset', () => {
    const w = readyWorld(1);
    const volumes = w.volumes.map((v) => (v.metadata.name === 's-original' ? { ...v, status: { ...v.status, templateRevision: 2 } } : v));
    const p = planStorage(obs({ volumes, present: w.present, vc: vcOf({ state: 'Suspended' }), template: osTemplate('base', '/s', 2) }));
    assert.deepEqual(types(p), ['reset:s-0-disk', 'reset:s-1-disk']);
  });

  it('scale down: the volumes of the removed node go', () => {
    const w = readyWorld();
    const p = planStorage(obs({ ...w, vc: { ...vcOf(), spec: { ...vcOf().spec!, nodes: 1 } }, configRevisions: { 0: 'r' } }));
    assert.deepEqual(types(p), ['remove:s-1-disk,s-1-swap,s-1-config']);
  });

  it('deletion: waits for VMs, then removes snapshots before the original, the directory, the finalizer', () => {
    const w = readyWorld();
    const deleting = vcOf({}, { finalizers: [STORAGE_FINALIZER], deletionTimestamp: '2026-01-01T00:00:00Z' });
    assert.deepEqual(types(planStorage(obs({ ...w, vc: deleting, vmsActive: true }))), []);
    const p = planStorage(obs({ ...w, vc: deleting }));
    assert.deepEqual(types(p), [
      'remove:s-0-config,s-0-disk,s-0-swap,s-1-config,s-1-disk,s-1-swap,s-shared,s-original', 'removeVcDir', 'removeFinalizer',
    ]);
    assert.deepEqual(types(planStorage(obs({ ...w, vc: { ...deleting, metadata: { ...deleting.metadata, finalizers: [] } } }))), []);
  });

  it('the storage work goes to the first Ready node in natural name order', () => {
    const notReady = storageNode('blade1', '/san');
    notReady.status = { conditions: [{ ...notReady.status!.conditions![0]!, status: 'False' }] };
    const picked = pickStorageNode([storageNode('blade10', '/san'), notReady, storageNode('blade2', '/san')]);
    assert.equal(picked?.metadata.name, 'blade2');
    assert.equal(pickStorageNode([notReady]), undefined);
  });

  it('a qcow2 VC\'s work goes to one of the Ready nodes sharing that root, by its uid; other drivers\' to the first', () => {
    const notReady = storageNode('blade1', '/san');
    notReady.status = { conditions: [{ ...notReady.status!.conditions![0]!, status: 'False' }] };
    const nodes = [storageNode('blade10', '/san'), notReady, storageNode('blade2', '/san'), storageNode('blade3', '/other'), storageNode('blade4', '/san')];
    const candidates = storageNodes(nodes);
    assert.deepEqual(candidates.map((n) => n.metadata.name), ['blade2', 'blade4', 'blade10'], 'Ready, the first one\'s root, natural order');
    const vc = (uid: string, storageDriver?: 'qcow2' | 'lvm') => {
      const v = storageVc('s', 2, 'base', storageDriver ? { storageDriver } : {});
      return { ...v, metadata: { ...v.metadata, uid } };
    };
    const picked = Array.from({ length: 60 }, (_, i) => storageNodeFor(vc(`uid-${i}`), candidates)!.metadata.name);
    assert.deepEqual(new Set(picked), new Set(['blade2', 'blade4', 'blade10']), 'qcow2 VCs spread over every candidate');
    assert.equal(storageNodeFor(vc('uid-7'), candidates), storageNodeFor(vc('uid-7'), candidates), 'a VC keeps its node');
    assert.ok(Array.from({ length: 20 }, (_, i) => storageNodeFor(vc(`uid-${i}`, 'lvm'), candidates)!.metadata.name).every((n) => n === 'blade2'), 'lvm: the first');
    assert.equal(storageNodeFor(vc('uid-1'), []), undefined);
  });
});

describe('the hold after a rolled-back storage attempt (stored on the VC)', () => {
  const t0 = new Date('2026-12-05T03:00:00Z');
  const later = (ms: number): Date => new Date(t0.getTime() + ms);
  const template = (rv: string): OSTemplate => {
    const t = osTemplate('base', '/san/t.qcow2', 1) as OSTemplate;
    t.metadata = { ...t.metadata, resourceVersion: rv };
    return t;
  };
  const marked = (tpl: OSTemplate | undefined, extra: { generation?: number; deletionTimestamp?: string } = {}) => {
    const vc = vcOf();
    vc.metadata.annotations = { ...(vc.metadata.annotations ?? {}), [ROLLBACK_ANNOTATION]: rollbackMark(vc, tpl, t0) };
    vc.metadata = { ...vc.metadata, ...extra };
    return vc;
  };

  it('holds for the rest of the hold time while the spec and the template stay as they were', () => {
    assert.equal(rollbackHoldMs(marked(template('7')), template('7'), later(15_000)), ROLLBACK_HOLD_MS - 15_000);
    assert.equal(rollbackHoldMs(marked(undefined), undefined, later(1)), ROLLBACK_HOLD_MS - 1, 'a template missing then and now');
  });

  it('ends when the hold time is over, the spec or the template changed, or the VC is being deleted', () => {
    assert.equal(rollbackHoldMs(marked(template('7')), template('7'), later(ROLLBACK_HOLD_MS)), undefined, 'time over');
    assert.equal(rollbackHoldMs(marked(template('7'), { generation: 2 }), template('7'), later(1)), undefined, 'spec changed');
    assert.equal(rollbackHoldMs(marked(template('7')), template('8'), later(1)), undefined, 'template written');
    assert.equal(rollbackHoldMs(marked(undefined), template('8'), later(1)), undefined, 'template created');
    assert.equal(rollbackHoldMs(marked(template('7')), undefined, later(1)), undefined, 'template deleted');
    assert.equal(rollbackHoldMs(marked(template('7'), { deletionTimestamp: t0.toISOString() }), template('7'), later(1)), undefined, 'deleting');
  });

  it('no mark, or one that cannot be read, holds nothing', () => {
    assert.equal(rollbackHoldMs(vcOf(), template('7'), later(1)), undefined);
    const vc = vcOf();
    vc.metadata.annotations = { [ROLLBACK_ANNOTATION]: 'not json' };
    assert.equal(rollbackHoldMs(vc, template('7'), later(1)), undefined);
  });
});
