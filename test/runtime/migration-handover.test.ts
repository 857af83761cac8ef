// The migration controller with volumes handed over at the switchover (volume-activation.ts:
// needsHandOver, prepareIncoming, handOver, abortIncoming): fast unit test with a fake store, a
// fake hypervisor driver and a recording port; the real path runs on full Xen nodes (XenDriver's
// xl migrate -p, test/hypervisor/xen-driver.recorded.test.ts for its command lines). Checked: the
// order of the calls around the switchover (prepareIncoming before anything transfers, handOver
// while the domain waits paused on the target, the source's mapping dropped afterwards), the undo
// on a failed migration, the refusal on a driver that cannot stop at the switchover, and that the
// message names the hypervisor.

import assert from 'node:assert/strict';
import type { ApiObject, Migration, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { MigrationFailedError, MigrationSettledError, MigrationStrandedError, type DomainInfo, type HypervisorDriver, type MigrateOptions, type MigrationResult, type MigrationSettlement } from '../../drivers/hypervisor/types.js';
import { tapName } from '../../drivers/network/types.js';
import { migrationController } from '../../reconcilers/runtime/migration-controller.js';
import type { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';
import type { VolumeActivation } from '../../reconcilers/runtime/volume-activation.js';
import { RecordingTransport } from '../hypervisor/recording-transport.js';

const NAME = 'default.duo-0';
const BOOTED = new Date(Date.now() - 3_600_000).toISOString();
const key = (r: { kind: string; name: string; namespace?: string }) => `${r.kind}/${r.namespace ?? ''}/${r.name}`;

function node(name: string): PhysicalNode {
  return {
    kind: 'PhysicalNode', metadata: { name },
    spec: { hypervisor: 'xen', address: `${name}.example`, capacity: { cores: 4, memoryMiB: 4096 } },
    status: { conditions: [{ type: 'Ready', status: 'True' }] },
  } as unknown as PhysicalNode;
}

/** A driver whose domain runs on the source; migrate() calls beforeResume as Xen's does (paused on the target). */
class FakeDriver implements Partial<HypervisorDriver> {
  readonly kind = 'xen' as const;
  readonly transport: RecordingTransport;
  domains = new Map<string, DomainInfo>();
  constructor(readonly node: string, readonly log: string[], readonly pausedSwitchover: boolean, readonly fail: boolean | Error = false) {
    this.transport = new RecordingTransport(node);
    // the network layer's tap and anti-spoofing rules for the VM (the controller waits for them)
    this.transport.answer(['ip', '-j', 'link', 'show'], { code: 0, stdout: JSON.stringify([{ ifname: tapName(NAME), address: '52:54:00:00:00:01' }]), stderr: '' });
    this.transport.answer(['nft', '-j', 'list'], { code: 0, stdout: JSON.stringify({ nftables: [{ rule: { comment: `antispoof forward ${NAME}` } }, { rule: { comment: `antispoof input ${NAME}` } }] }), stderr: '' });
  }
  async get(name: string) { return this.domains.get(name); }
  async migrate(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<MigrationResult> {
    this.log.push(`migrate ${this.node}->${target.node}${opts.beforeResume ? ' -p' : ''}`);
    if (this.fail) throw this.fail instanceof Error ? this.fail : new MigrationFailedError('xl migrate failed: the stream broke');
    this.domains.delete(name);
    (target as unknown as FakeDriver).domains.set(name, { name, state: 'paused' });
    await opts.beforeResume?.();
    this.log.push('unpause');
    (target as unknown as FakeDriver).domains.set(name, { name, state: 'running' });
    return { downtimeMs: 700, totalMs: 9000, endToEndMs: 9500, transferredBytes: 0 };
  }
  async cancelMigration() { this.log.push(`cancel ${this.node}`); return false; }
  async destroy(name: string) { this.log.push(`destroy ${this.node}`); this.domains.delete(name); }
  /** Xen's settleMigration, as the fake: `settleTo` says where the complete copy is. */
  settleTo?: 'target' | 'source' | 'disks';
  async settleMigration(name: string, target: HypervisorDriver, opts: { beforeResume?: () => Promise<void> } = {}): Promise<MigrationSettlement | undefined> {
    if (this.domains.get(name)?.detail !== 'migratedaway') return undefined;
    this.log.push(`settle ${this.node}->${target.node}`);
    const t = target as unknown as FakeDriver;
    if (this.settleTo === 'target') {
      this.domains.delete(name);
      await opts.beforeResume?.();
      this.log.push('unpause');
      t.domains.set(name, { name, state: 'running' });
      return { runsOn: target.node, movedToTarget: true, memoryKept: true, message: 'blade2 had the whole domain' };
    }
    t.domains.delete(name);
    this.domains.set(name, { name, state: 'running' });
    if (this.settleTo === 'disks') {
      return { runsOn: this.node, movedToTarget: false, memoryKept: false, message: 'blade2 had no complete copy; the suspended copy could not be resumed (xl save -c failed): it was destroyed and the VM started again from its disks on blade1 (its memory state was lost)' };
    }
    return { runsOn: this.node, movedToTarget: false, memoryKept: true, message: 'blade2 had no complete copy: the suspended copy was resumed on blade1 (xl save -c), its memory state kept' };
  }
}

function setup(opts: { pausedSwitchover?: boolean; fail?: boolean | Error; handOverFailures?: number; stranded?: { settleTo: 'target' | 'source' | 'disks'; target: DomainInfo['state'] | undefined }; storageDriver?: string } = {}) {
  const log: string[] = [];
  const objs = new Map<string, ApiObject>();
  const put = (o: ApiObject) => objs.set(key({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace }), structuredClone(o));
  const vc = { kind: 'VirtualCluster', metadata: { name: 'duo', namespace: 'default', uid: 'u1' }, spec: { state: 'Running', storageDriver: opts.storageDriver ?? 'evms', placement: { strategy: 'Cyclic', mode: 'Lazy' } } } as unknown as VirtualCluster;
  // the guest reported in an hour ago (its first boot)
  const vn = {
    kind: 'VirtualNode', metadata: { name: 'duo-0', namespace: 'default', generation: 1 }, spec: { cluster: 'duo', vcpus: 1, memoryMiB: 128, physicalNode: 'blade1' },
    status: { phase: 'Running', host: 'blade1', bootTime: BOOTED, conditions: [{ type: 'GuestReady', status: 'True', reason: 'ConsoleReady', message: 'the guest printed: VIRTUALINUX-READY', lastTransitionTime: BOOTED }] },
  } as unknown as VirtualNode;
  const m = { kind: 'Migration', metadata: { name: 'm1', namespace: 'default', uid: 'm1', generation: 1 }, spec: { virtualNode: 'duo-0', targetNode: 'blade2' } } as unknown as Migration;
  for (const o of [vc, vn, m, node('blade1'), node('blade2')]) put(o);
  const store = {
    async tryGet<T>(r: ObjectRef) { const o = objs.get(key(r)); return o ? (structuredClone(o) as T) : undefined; },
    async get<T>(r: ObjectRef) { const o = objs.get(key(r)); if (!o) throw new Error(`no ${key(r)}`); return structuredClone(o) as T; },
    async updateStatus<T extends ApiObject>(o: T) { put(o); return structuredClone(o); },
  };
  const cache = {
    get: <T>(r: ObjectRef) => objs.get(key(r)) as T | undefined,
    list: <T>(kind: string) => [...objs.values()].filter((o) => o.kind === kind) as T[],
  };
  const events: string[] = [];
  const ctx = { store, cache, events: { record: (_o: unknown, type: string, reason: string, msg: string) => events.push(`${type} ${reason} ${msg}`) }, log: console, signal: new AbortController().signal } as unknown as ReconcileContext;
  const src = new FakeDriver('blade1', log, opts.pausedSwitchover ?? true, opts.fail);
  const tgt = new FakeDriver('blade2', log, opts.pausedSwitchover ?? true);
  src.domains.set(NAME, { name: NAME, state: 'running' });
  if (opts.stranded) {
    // a manager died while xl migrate ran (5 min ago: past the 2 min timeout); xl died past its point of no return (XenDriver lists
    // the source's <name>--migratedaway as paused, detail migratedaway, once no xl sends it)
    put({ ...m, status: { phase: 'Running', sourceNode: 'blade1', startTime: new Date(Date.now() - 300_000).toISOString(), message: 'migrating from blade1 to blade2' } } as Migration);
    src.domains.set(NAME, { name: NAME, state: 'paused', detail: 'migratedaway' });
    src.settleTo = opts.stranded.settleTo;
    if (opts.stranded.target) tgt.domains.set(NAME, { name: NAME, state: opts.stranded.target });
  }
  const drivers = { get: (pn: PhysicalNode) => (pn.metadata.name === 'blade1' ? src : tgt) } as unknown as HypervisorDrivers;
  let failures = opts.handOverFailures ?? 0;
  const volumes: VolumeActivation = {
    activate: async () => { log.push('activate'); },
    deactivate: async (_vc, _vn, n) => { log.push(`deactivate ${n.metadata.name}`); },
    needsHandOver: (c) => c.spec?.storageDriver === 'evms',
    prepareIncoming: async (_vc, _vn, t) => { log.push(`prepareIncoming ${t.metadata.name}`); },
    handOver: async (_vc, _vn, s, t) => {
      log.push(`handOver ${s.metadata.name}->${t.metadata.name} (target domain ${tgt.domains.get(NAME)?.state})`);
      if (failures-- > 0) throw new Error('dmsetup: device busy');
    },
    abortIncoming: async (_vc, _vn, t) => { log.push(`abortIncoming ${t.metadata.name}`); },
  };
  const c = migrationController({ transports: { get: () => src.transport } as never, drivers, volumes });
  const ref = { kind: 'Migration', name: 'm1', namespace: 'default' };
  const migration = () => objs.get(key(ref)) as Migration;
  return { log, events, src, tgt, run: () => c.reconcile(ref, ctx), migration, vnStatus: () => (objs.get(key({ kind: 'VirtualNode', name: 'duo-0', namespace: 'default' })) as VirtualNode).status };
}

describe('migration controller: volumes handed over at the switchover', function () {
  this.timeout(30_000);

  it('prepareIncoming before the transfer, handOver while the domain waits paused on the target, then it runs there and the source mapping goes', async () => {
    const s = setup();
    await s.run();
    assert.deepEqual(s.log, ['prepareIncoming blade2', 'migrate blade1->blade2 -p', 'handOver blade1->blade2 (target domain paused)', 'unpause', 'deactivate blade1']);
    assert.equal(s.migration().status?.phase, 'Succeeded', s.migration().status?.message);
    assert.match(s.migration().status!.message!, /total 9000 ms \(Xen\)/);
    assert.doesNotMatch(s.migration().status!.message!, /MiB/, 'xl reports no bytes sent: no "0 MiB" in the status');
    assert.equal(s.vnStatus()?.host, 'blade2');
  });

  it('a handOver that fails twice is tried again while the domain stays paused', async () => {
    const s = setup({ handOverFailures: 2 });
    await s.run();
    assert.equal(s.log.filter((l) => l.startsWith('handOver')).length, 3);
    assert.equal(s.migration().status?.phase, 'Succeeded');
  });

  it('a failed migration undoes the target\'s incoming mapping; the VM keeps running on the source', async () => {
    const s = setup({ fail: true });
    await s.run();
    assert.deepEqual(s.log, ['prepareIncoming blade2', 'migrate blade1->blade2 -p', 'abortIncoming blade2']);
    assert.equal(s.migration().status?.phase, 'Failed');
    assert.match(s.migration().status!.message!, /keeps running on blade1/);
    assert.equal(s.src.domains.get(NAME)?.state, 'running');
  });

  it('a driver that cannot stop at the switchover: refused with the reason, nothing prepared', async () => {
    const s = setup({ pausedSwitchover: false });
    await s.run();
    assert.deepEqual(s.log, []);
    assert.equal(s.migration().status?.phase, 'Failed');
    assert.match(s.migration().status!.message!, /handed over to the target at the switchover, and the Xen driver cannot stop there/);
  });

  it('a failed xl migrate settled by starting the VM again from its disks: Failed with the driver\'s account (no "keeps running"), a new boot on the VirtualNode (bootTime now, GuestReady waiting again)', async () => {
    const settlement = { runsOn: 'blade1', movedToTarget: false, memoryKept: false, message: 'blade2 had no complete copy; it was destroyed and the VM started again from its disks on blade1 (its memory state was lost)' };
    const s = setup({ fail: new MigrationSettledError(`migrating ${NAME} from blade1 to blade2 failed: ${settlement.message}`, settlement) });
    const before = Date.now();
    await s.run();
    assert.deepEqual(s.log, ['prepareIncoming blade2', 'migrate blade1->blade2 -p', 'abortIncoming blade2']);
    assert.equal(s.migration().status?.phase, 'Failed');
    assert.match(s.migration().status!.message!, /started again from its disks on blade1 \(its memory state was lost\)$/);
    assert.doesNotMatch(s.migration().status!.message!, /keeps running/);
    const st = s.vnStatus()!;
    assert.equal(st.host, 'blade1');
    assert.ok(Date.parse(st.bootTime!) >= before, `bootTime ${st.bootTime} is the new boot's, not the first one's (${BOOTED})`);
    const ready = st.conditions?.find((c) => c.type === 'GuestReady');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'Booting');
    assert.match(ready!.message!, /started again from its disks on blade1/);
  });

  it('a failed xl migrate settled with the memory kept on the source: the same boot goes on (bootTime and GuestReady as they were)', async () => {
    const settlement = { runsOn: 'blade1', movedToTarget: false, memoryKept: true, message: 'the suspended copy was resumed on blade1 (xl save -c), its memory state kept' };
    const s = setup({ fail: new MigrationSettledError(`migrating ${NAME} failed: ${settlement.message}`, settlement) });
    await s.run();
    assert.equal(s.migration().status?.phase, 'Failed');
    assert.match(s.migration().status!.message!, /its memory state kept$/);
    assert.equal(s.vnStatus()?.bootTime, BOOTED);
    assert.equal(s.vnStatus()?.conditions?.find((c) => c.type === 'GuestReady')?.status, 'True');
  });

  it('a failed xl migrate whose settling failed part way: nothing undone on the target, the Migration stays Running (with a Warning) and the next reconcile settles it', async () => {
    const s = setup({ fail: new MigrationStrandedError(`migrating ${NAME} from blade1 to blade2 failed and settling it failed: xl rename: timed out`) });
    // xl left the source's copy renamed and suspended; the target holds the whole domain
    s.src.domains.set(NAME, { name: NAME, state: 'paused', detail: 'migratedaway' });
    s.tgt.domains.set(NAME, { name: NAME, state: 'incoming' });
    s.src.settleTo = 'target';
    const r = await s.run();
    assert.deepEqual(s.log, ['prepareIncoming blade2', 'migrate blade1->blade2 -p'], 'the incoming volumes stay: the target may hold the VM');
    assert.equal(s.migration().status?.phase, 'Running');
    assert.match(s.migration().status!.message!, /settling it failed: xl rename: timed out/);
    assert.ok(s.events.some((e) => e.startsWith('Warning MigrationStranded')), s.events.join('\n'));
    assert.ok(r && 'requeueAfterMs' in r && r.requeueAfterMs! > 0);
    await s.run();
    assert.equal(s.migration().status?.phase, 'Succeeded', s.migration().status?.message);
    assert.equal(s.vnStatus()?.host, 'blade2');
    assert.equal(s.tgt.domains.get(NAME)?.state, 'running');
  });

  describe('a migration stranded past its point of no return while no manager watched (Xen: <name>--migratedaway, its xl migrate gone)', () => {
    it('the target holds the whole domain: the source\'s driver settles it there (the handover before it runs), Succeeded, the VM bound to the target', async () => {
      const s = setup({ stranded: { settleTo: 'target', target: 'incoming' } });
      await s.run();
      // the old plan waited for a transfer that had ended, then aborted: destroyed the complete
      // copy on the target and said the VM kept running on a source whose copy was suspended
      assert.deepEqual(s.log, ['settle blade1->blade2', 'handOver blade1->blade2 (target domain incoming)', 'unpause', 'deactivate blade1']);
      assert.equal(s.migration().status?.phase, 'Succeeded', s.migration().status?.message);
      assert.match(s.migration().status!.message!, /^moved to blade2: blade2 had the whole domain/);
      assert.equal(s.vnStatus()?.host, 'blade2');
      assert.equal(s.tgt.domains.get(NAME)?.state, 'running');
      assert.equal(s.src.domains.get(NAME), undefined);
    });

    it('the target has no copy, past the timeout too: settled on the source, the Migration Failed saying where it runs and that its memory was kept', async () => {
      for (const target of [undefined, 'incoming'] as const) {
        const s = setup({ stranded: { settleTo: 'source', target }, storageDriver: 'qcow2' });
        await s.run();
        assert.deepEqual(s.log, ['settle blade1->blade2'], `target ${target}: nothing aborted, nothing destroyed by the controller`);
        assert.equal(s.migration().status?.phase, 'Failed');
        assert.match(s.migration().status!.message!, /no complete copy: the suspended copy was resumed on blade1 \(xl save -c\), its memory state kept/);
        assert.equal(s.vnStatus()?.host, 'blade1');
        assert.equal(s.src.domains.get(NAME)?.state, 'running');
        assert.equal(s.tgt.domains.get(NAME), undefined);
      }
    });

    it('the source\'s copy cannot be resumed: started again from its disks there, the Migration Failed saying so, the VirtualNode a new boot', async () => {
      const s = setup({ stranded: { settleTo: 'disks', target: undefined }, storageDriver: 'qcow2' });
      const before = Date.now();
      await s.run();
      assert.equal(s.migration().status?.phase, 'Failed');
      assert.match(s.migration().status!.message!, /started again from its disks on blade1/);
      assert.equal(s.vnStatus()?.host, 'blade1');
      assert.ok(Date.parse(s.vnStatus()!.bootTime!) >= before);
      assert.equal(s.vnStatus()?.conditions?.find((c) => c.type === 'GuestReady')?.reason, 'Booting');
    });
  });
});
