// The SAN block drivers for real (tier: *.full.test.ts), evms and lvm (thin), on ONE testbed of two
// full nodes (QEMU TCG machines running Xen with a Debian dom0) sharing one raw SAN disk: booting
// full nodes and every LVM command under TCG are the slow parts, so both drivers share the nodes
// and the volume group (`vlsan`; each VC's LVs carry its uid, so they never meet).
//
// - the storage driver conformance suite for each driver, with the driver acting on blade1 and
//   every content check made through the device blade1 maps (mapped there first when the driver
//   activates per node, as a VM's node would);
// - evms and lvm, one body with the driver as parameter: the paper's activation semantics
//   (section 3.2) across the two nodes: a snapshot is mapped only on the node that runs its VM,
//   moves (deactivate here, activate there) with its data, never resets on activation, the
//   original is read-only on every node, a reset needs the snapshot inactive everywhere, a dead
//   node's snapshot is taken over only when told;
// - lvm: activations on the storage node while its usage reads run there (LVM refused them when
//   a read mapped the pool's _tmeta), and the usage figure read on the storage node while another
//   node has the pool;
// - evms and lvm: the runtime's activation port (reconcilers/storage/activation.ts) mapping a VM's
//   disk and swap where it runs, handing them over at a live migration's switchover (lvm: the
//   thin pool unmapped on the source before the target maps it) and moving them from one node to
//   the other. What the conformance suite checks already (removal, reset, independence) is not
//   checked again here.
// The recorded test (lvm-driver.recorded.test.ts) stays as the fast unit test of lvm's argument
// vectors. Needs root and the node image (built on first use, then cached).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EvmsDriver } from '../../drivers/storage/evms-driver.js';
import { LVM_SCRIPTS, LvmDriver } from '../../drivers/storage/lvm-driver.js';
import { ActiveElsewhereError, type NodeActivation, type StorageDriver, type VolumeInfo, type VolumeKey } from '../../drivers/storage/types.js';
import { READ_ONLY_METADATA } from '../../drivers/storage/lvm-volumes.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';
import { SAN_DEVICE } from '../../hack/lib/full-node.js';
import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { storageActivation } from '../../reconcilers/storage/activation.js';
import { describeDriverConformance, type ConformanceHarness } from './driver-conformance.js';
import { blockChecks, blockHolds, blockReadOnly, blockWrite, dmNames, sanTestbedUp, type SanTestbed } from './san-testbed.js';
import { listTree } from './storage-fixtures.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const T = { timeoutMs: 180_000 };
// Per conformance case: its removal case runs some 150 LVM commands, each seconds in a TCG node;
// at load average 20 and more it took longer than 600 s (the run of Dec 5, 09:23).
const SUITE_TIMEOUT_MS = 1_200_000;

/** A process on node `t` holding `dev` open (as a hypervisor does); resolves once it has it open, to its stopper. */
async function holdOpen(t: Transport, dev: string): Promise<() => Promise<void>> {
  const pidFile = `/tmp/hold-${Math.random().toString(36).slice(2)}`;
  const p = t.spawn(['sh', '-c', 'exec 3<"$1"; echo $$ > "$2"; exec sleep 600', 'sh', dev, pidFile]);
  void p.done.catch(() => undefined);
  await execOk(t, ['sh', '-c', 'for i in $(seq 600); do [ -s "$1" ] && exit 0; sleep 0.2; done; exit 1', 'sh', pidFile], T);
  return async () => {
    await execOk(t, ['sh', '-c', 'kill "$(cat "$1")"; rm -f "$1"', 'sh', pidFile], T);
    p.kill();
  };
}

/**
 * Args: script vg pool original. The kernel's block uevents (add/remove lines of `udevadm monitor`)
 * while `script vg pool` runs (the usage read), then `---`, then those of a mapping and unmapping of
 * `original` (read-only metadata; the events of both windows, so only theirs when the first had none).
 */
const UEVENTS_DURING = `f=$(mktemp)
udevadm monitor --kernel --subsystem-match=block > "$f" 2>&1 & m=$!
for i in $(seq 300); do grep -q 'KERNEL - the kernel uevent' "$f" && break; sleep 0.2; done
sh -c "$1" sh "$2" "$3" > /dev/null || { kill $m; exit 1; }
sleep 2; grep -E '^KERNEL.* (add|remove) ' "$f"; echo ---
lvchange -ay --config global/metadata_read_only=1 "$4" && lvchange -an --config global/metadata_read_only=1 "$4"
sleep 2; kill $m; grep -E '^KERNEL.* (add|remove) ' "$f"
rm -f "$f"`;

/** A SAN driver with per-node activation. */
type SanDriver = StorageDriver & NodeActivation;

/**
 * A describe's cleanup: every volume unmapped on every node, then all removed. Errors are ignored
 * (a failed case may have left any of them, or none).
 */
async function releaseVolumes(driver: SanDriver | undefined, keys: VolumeKey[], nodes: Transport[]): Promise<void> {
  if (!driver) return;
  for (const t of nodes) for (const k of keys) await driver.deactivate(k, t).catch(() => undefined);
  await driver.removeAll(keys).catch(() => undefined);
}

/** What the shared activation cases need to know of one SAN driver. */
interface SanSubject<D extends SanDriver> {
  label: string;
  make(): D;
  /** The VC's snapshot devices mapped on node `t` (its uid in their names). */
  mapped(t: Transport, uid: string): Promise<string[]>;
  /** The name `mapped` lists for snapshot `k`. */
  mappedName(d: D, k: VolumeKey): string;
  /** Unmaps `k` on `t` as a node dying would: no deactivation, the record stays. */
  die(t: Transport, d: D, k: VolumeKey): Promise<void>;
  /** What LVM maps for the VC's snapshots on `t` that must never be mapped on two nodes at once (lvm: the thin pools); none for evms. */
  exclusive(t: Transport, uid: string): Promise<string[]>;
}

const EVMS: SanSubject<EvmsDriver> = {
  label: 'evms',
  make: () => new EvmsDriver(ssh()[0]!, { sanDevice: SAN_DEVICE }),
  mapped: (t, uid) => dmNames(t, uid),
  mappedName: (d, k) => d.dmName(k),
  die: async (t, d, k) => void (await execOk(t, ['dmsetup', 'remove', d.dmName(k)], T)),
  exclusive: async () => [],
};

const LVM: SanSubject<LvmDriver> = {
  label: 'lvm (thin)',
  make: () => new LvmDriver(ssh()[0]!, { vg: 'vlsan', sanDevice: SAN_DEVICE }),
  // the thin snapshots' own devices (vlthin-<LV>, the VM's disk, the raw uid in the name), each
  // over LVM's thin LV (the uid's dashes doubled in LVM's names)
  mapped: async (t, uid) => (await dmNames(t, uid)).filter((n) => n.startsWith('vlthin-')),
  mappedName: (d, k) => d.dmName(k),
  die: async (t, d, k) => {
    await execOk(t, ['dmsetup', 'remove', d.dmName(k)], T);
    await execOk(t, ['lvchange', '-an', ...READ_ONLY_METADATA, `vlsan/${d.lvName(k)}`], T);
  },
  exclusive: async (t, uid) => (await dmNames(t, uid.replace(/-/g, '--'))).filter((n) => /-tpool$/.test(n)),
};

let nodesOfFile: Transport[] = [];
/** The testbed's node transports (set in the file's `before`). */
const ssh = (): Transport[] => nodesOfFile;

// (`--grep lvm` runs lvm's cases alone: this title says LVM in capitals)
describe('SAN drivers (evms, LVM thin) on the SAN disk of two full nodes', function () {
  this.timeout(900_000);
  let san: SanTestbed;
  let a: Transport;
  let b: Transport;

  before(async () => {
    const t0 = Date.now();
    san = await sanTestbedUp({ sanMiB: 3072, templateBytes: 64 * MiB });
    a = san.nodes[0]!;
    b = san.nodes[1]!;
    nodesOfFile = san.nodes;
    process.stderr.write(`      (2 full nodes up in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  });
  after(async () => {
    await san?.down();
  });

  /** A fresh VC: its uid, its directory on the shared storage root, its volume keys. */
  const freshVc = (): { vcDir: string; uid: string; key: (n: string) => VolumeKey } => {
    const uid = randomUUID();
    const vcDir = join(san.tb.sanDir, 'vcs', 'default', `vc-${uid}`);
    return { vcDir, uid, key: (name) => ({ vcDir, vcUid: uid, name }) };
  };

  /**
   * The conformance harness for a SAN driver on blade1: a volume's device is mapped there by the
   * driver's activation before it is checked. `lvNames`: also list the VC's LV mappings (LVM's
   * device-mapper names) in the leak check.
   */
  const harness = (driver: SanDriver, vc: ReturnType<typeof freshVc>, lvNames = false): ConformanceHarness => ({
    driver,
    vcDir: vc.vcDir,
    vcUid: vc.uid,
    template: { path: san.template, format: 'qcow2' },
    templateBytes: san.templateBytes,
    ...blockChecks(a, async (info) => {
      const m = /^\/dev\/(?:mapper\/vl(?:snap|thin)-|vlsan\/)[0-9a-f-]{36}_(.+)$/.exec(info.path);
      if (!m) throw new Error(`not a SAN volume path: ${info.path}`);
      return (await driver.activate(vc.key(m[1]!), a)).path;
    }),
    readConfig: (info) => readFile(info.path),
    // the VC's LVs, its device-mapper devices on both nodes, its files
    listVolumes: async () => {
      const parts = lvNames ? [vc.uid, vc.uid.replace(/-/g, '--')] : [vc.uid];
      const [lvs, mapped, files] = await Promise.all([
        execOk(a, ['lvs', '--noheadings', '-o', 'lv_name', 'vlsan'], T).catch(() => ''),
        Promise.all(san.nodes.flatMap((t) => parts.map((p) => dmNames(t, p)))),
        listTree(vc.vcDir),
      ]);
      return [...lvs.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(vc.uid)), ...new Set(mapped.flat()), ...files];
    },
    cleanup: async () => undefined,
  });

  describeDriverConformance('evms (dm snapshots on the SAN disk, full nodes)', async () => harness(EVMS.make(), freshVc()), SUITE_TIMEOUT_MS);

  /**
   * The paper's activation semantics (section 3.2) across the two nodes for one SAN driver: moves
   * with its data, never reset, refusals while active elsewhere, takeover of a dead node's
   * snapshot only when told.
   */
  const activationCases = <D extends SanDriver>(s: SanSubject<D>): void => void describe(`${s.label}: activation follows the VM (paper, section 3.2)`, () => {
    let d: ReturnType<typeof freshVc> & { driver: D };
    let orig: VolumeInfo;
    const names = ['vc-0-disk', 'vc-1-disk', 'vc-original'];
    before(async () => {
      d = { ...freshVc(), driver: s.make() };
      orig = await d.driver.createOriginal(d.key('vc-original'), { path: san.template, format: 'qcow2' });
      await d.driver.snapshotAll(d.key('vc-original'), [d.key('vc-0-disk'), d.key('vc-1-disk')]);
    });
    after(async () => {
      if (d) await releaseVolumes(d.driver, names.map(d.key), san.nodes);
    });

    it('mapped only where activated; moves between nodes with its data, never reset; the original read-only and unchanged on both', async () => {
      const k = d.key('vc-0-disk');
      assert.deepEqual([...(await s.mapped(a, d.uid)), ...(await s.mapped(b, d.uid))], [], 'a fresh snapshot is mapped nowhere');
      assert.equal(await d.driver.activeOn(k), undefined);
      const onA = await d.driver.activate(k, a);
      assert.deepEqual(await s.mapped(a, d.uid), [s.mappedName(d.driver, k)]);
      assert.deepEqual(await s.mapped(b, d.uid), []);
      assert.equal(await d.driver.activeOn(k), 'blade1');
      await blockWrite(a, onA.path, 0, 0xaa);
      await blockWrite(a, onA.path, san.templateBytes - 64 * KiB, 0xab);
      // blade2 may not map it while blade1 does
      await assert.rejects(d.driver.activate(k, b), ActiveElsewhereError);
      assert.deepEqual(await s.mapped(b, d.uid), []);
      await d.driver.deactivate(k, a);
      assert.deepEqual(await s.mapped(a, d.uid), []);
      assert.equal(await d.driver.activeOn(k), undefined);
      const onB = await d.driver.activate(k, b);
      assert.equal(await d.driver.activeOn(k), 'blade2');
      assert.ok(await blockHolds(b, onB.path, 0, 0xaa), 'blade2 reads what blade1 wrote');
      assert.ok(await blockHolds(b, onB.path, san.templateBytes - 64 * KiB, 0xab));
      assert.ok(await blockHolds(b, onB.path, 128 * KiB, 0x11), 'unwritten blocks come from the original');
      await blockWrite(b, onB.path, 128 * KiB, 0xbb);
      // the original on blade2 (blade1 is the conformance suite's): read-only, unchanged
      const o = await d.driver.activate(d.key('vc-original'), b);
      assert.equal(o.path, orig.path);
      assert.ok(await blockReadOnly(b, o.path), 'blade2 maps the original read-only');
      assert.ok(await blockHolds(b, o.path, 0, 0x11));
      assert.ok(await blockHolds(b, o.path, 128 * KiB, 0x11));
      // and back to blade1: activation never resets, both nodes' writes are there
      await d.driver.deactivate(k, b);
      const again = await d.driver.activate(k, a);
      assert.ok(await blockHolds(a, again.path, 0, 0xaa));
      assert.ok(await blockHolds(a, again.path, 128 * KiB, 0xbb));
      // the other VM's snapshot saw none of it
      const other = await d.driver.activate(d.key('vc-1-disk'), b);
      assert.ok(await blockHolds(b, other.path, 0, 0x11));
      await d.driver.deactivate(d.key('vc-1-disk'), b);
    });

    it('reset and remove are refused while the snapshot is active on another node; reset once inactive gives a fresh snapshot', async () => {
      const k = d.key('vc-0-disk');
      await d.driver.deactivate(k, a);
      await d.driver.activate(k, b);
      // the driver acts on blade1: blade2 holds the snapshot
      await assert.rejects(d.driver.reset(d.key('vc-original'), k), ActiveElsewhereError);
      await assert.rejects(d.driver.remove(k), ActiveElsewhereError);
      assert.equal(await d.driver.exists(k), true);
      assert.ok(await blockHolds(b, (await d.driver.activate(k, b)).path, 0, 0xaa), 'nothing lost by the refusals');
      await d.driver.deactivate(k, b);
      await d.driver.reset(d.key('vc-original'), k);
      const fresh = await d.driver.activate(k, b);
      assert.ok(await blockHolds(b, fresh.path, 0, 0x11), 'reset drops the private data');
      assert.ok(await blockHolds(b, fresh.path, 128 * KiB, 0x11));
      await d.driver.deactivate(k, b);
    });

    it('a node that died with the snapshot mapped: another node takes it over only when told', async () => {
      const k = d.key('vc-1-disk');
      const mappedB = await d.driver.activate(k, b);
      await blockWrite(b, mappedB.path, 256 * KiB, 0xcc);
      // blade2 "dies": its mapping goes without a deactivation (the record still names it)
      await s.die(b, d.driver, k);
      await assert.rejects(d.driver.activate(k, a), ActiveElsewhereError);
      const taken = await d.driver.activate(k, a, { takeOver: true });
      assert.equal(await d.driver.activeOn(k), 'blade1');
      assert.ok(await blockHolds(a, taken.path, 256 * KiB, 0xcc), 'what was written before the death is on the SAN');
    });
  });

  activationCases(EVMS);

  const portCases = <D extends EvmsDriver | LvmDriver>(s: SanSubject<D>): void => void describe(`${s.label}: the runtime's activation port maps a VM's volumes where it runs (storageActivation)`, () => {
    const uid = randomUUID();
    const vc = { metadata: { name: 'vc', namespace: 'default', uid }, spec: { storageDriver: s.make().name } } as unknown as VirtualCluster;
    const vn = { metadata: { name: 'vc-0', namespace: 'default' } } as unknown as VirtualNode;
    const node = (name: string): PhysicalNode => ({ metadata: { name }, spec: { storageRoot: san.tb.sanDir, sanDevice: SAN_DEVICE } }) as unknown as PhysicalNode;
    const key = (name: string): VolumeKey => ({ vcDir: vcStorageDir(san.tb.sanDir, 'default', 'vc', uid), vcUid: uid, name });
    let driver: D;
    const swapOn = async (t: Transport): Promise<boolean> => (await t.exec(['test', '-b', `/dev/vlsan/${uid}_vc-0-swap`], T)).code === 0;
    before(async () => {
      driver = s.make();
      await driver.createOriginal(key('vc-original'), { path: san.template, format: 'qcow2' });
      await driver.snapshot(key('vc-original'), key('vc-0-disk'));
      await driver.createSwap(key('vc-0-swap'), 16 * MiB);
    });
    after(async () => {
      await releaseVolumes(driver, ['vc-0-disk', 'vc-0-swap', 'vc-original'].map(key), san.nodes);
    });

    it('maps disk and swap on the VM\'s node only; a live migration hands them over at the switchover while both sides hold the disk open (an aborted one leaves the source as it was); a start elsewhere is refused, or unmaps the old node first; stop unmaps', async () => {
      const volumes = storageActivation({ get: (pn) => (pn.metadata.name === 'blade1' ? a : b) });
      const refuse = (): 'refuse' => 'refuse';
      const disk = driver.dmName(key('vc-0-disk'));
      const dev = `/dev/mapper/${disk}`;
      await volumes.activate(vc, vn, node('blade1'), refuse);
      assert.deepEqual(await dmNames(a, uid), [disk]);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [true, false]);
      await blockWrite(a, dev, 0, 0xaa);
      // a live migration to blade2 that fails before the switchover: blade2's incoming device and swap go, blade1 keeps it all
      await volumes.prepareIncoming!(vc, vn, node('blade2'));
      assert.deepEqual(await dmNames(b, uid), [disk]);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [true, true]);
      await volumes.abortIncoming!(vc, vn, node('blade2'));
      assert.deepEqual(await dmNames(b, uid), []);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [true, false]);
      assert.equal(await driver.activeOn(key('vc-0-disk')), 'blade1');
      assert.ok(await blockHolds(a, dev, 0, 0xaa), 'the aborted migration left the source\'s disk as it was');
      // the live migration: the target's hypervisor opens the disk when the incoming domain is made
      await volumes.prepareIncoming!(vc, vn, node('blade2'));
      const holdA = await holdOpen(a, dev);
      const holdB = await holdOpen(b, dev);
      try {
        const sizeOn = async (t: Transport): Promise<string> => (await execOk(t, ['blockdev', '--getsize64', dev], T)).trim();
        assert.equal(await sizeOn(b), await sizeOn(a), 'the incoming device has the snapshot\'s size');
        assert.equal(await blockHolds(b, dev, 0, 0xaa), false, 'the target reads nothing before the switchover');
        assert.deepEqual(await s.exclusive(b, uid), [], 'and maps nothing exclusive (lvm: the pool) before it');
        if (driver instanceof LvmDriver) assert.equal((await s.exclusive(a, uid)).length, 1, 'the source has the pool');
        await blockWrite(a, dev, 512 * KiB, 0xdd); // the source's last write before it stops
        await volumes.handOver!(vc, vn, node('blade1'), node('blade2'));
        await volumes.handOver!(vc, vn, node('blade1'), node('blade2')); // a retry after a lost answer is harmless
        assert.equal(await driver.activeOn(key('vc-0-disk')), 'blade2');
        assert.ok(await blockHolds(b, dev, 512 * KiB, 0xdd), 'the target reads the source\'s last write');
        assert.ok(await blockHolds(b, dev, 0, 0xaa), 'and what was written before');
        assert.equal(await blockHolds(a, dev, 512 * KiB, 0xdd), false, 'the source reads nothing any more');
        // what one node at a time may map (lvm: the snapshot's thin pool) left the source before the target mapped it
        assert.deepEqual(await s.exclusive(a, uid), [], 'nothing exclusive left on the source');
        if (driver instanceof LvmDriver) assert.equal((await s.exclusive(b, uid)).length, 1, 'the pool is mapped on the target');
      } finally {
        await holdA();
        await holdB();
      }
      // the source's domain is gone: its leftovers are unmapped, the target's record stays
      await volumes.deactivate(vc, vn, node('blade1'));
      assert.deepEqual(await dmNames(a, uid), []);
      assert.deepEqual(await dmNames(b, uid), [disk]);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [false, true]);
      assert.equal(await driver.activeOn(key('vc-0-disk')), 'blade2');
      // the VM runs on blade2: a start on blade1 is refused, nothing changes
      await assert.rejects(volumes.activate(vc, vn, node('blade1'), refuse), ActiveElsewhereError);
      assert.deepEqual(await dmNames(a, uid), []);
      // a start on blade1 while the runtime sees no domain on blade2: blade2's mapping goes first, the data moves
      await volumes.activate(vc, vn, node('blade1'), () => ({ release: node('blade2') }));
      assert.deepEqual(await dmNames(b, uid), []);
      assert.deepEqual(await dmNames(a, uid), [disk]);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [true, false]);
      assert.equal(await driver.activeOn(key('vc-0-disk')), 'blade1');
      assert.ok(await blockHolds(a, dev, 512 * KiB, 0xdd), 'the move kept the VM\'s data');
      // stopped on blade1: unmapped everywhere
      await volumes.deactivate(vc, vn, node('blade1'));
      assert.deepEqual([...(await dmNames(a, uid)), ...(await dmNames(b, uid))], []);
      assert.deepEqual([await swapOn(a), await swapOn(b)], [false, false]);
      assert.equal(await driver.activeOn(key('vc-0-disk')), undefined);
    });
  });

  portCases(EVMS);

  describeDriverConformance('lvm (a thin pool per snapshot on the SAN disk, full nodes)', async () => harness(LVM.make(), freshVc(), true), SUITE_TIMEOUT_MS);

  // lvm: the move and the refusals, and the port with the live migration's handover
  activationCases(LVM);
  portCases(LVM);

  describe('lvm (thin): activation on the storage node beside its usage reads', () => {
    let d: ReturnType<typeof freshVc> & { driver: LvmDriver };
    const names = ['vc-0-disk', 'vc-original'];
    before(async () => {
      d = { ...freshVc(), driver: LVM.make() };
      await d.driver.createOriginal(d.key('vc-original'), { path: san.template, format: 'qcow2' });
      await d.driver.snapshot(d.key('vc-original'), d.key('vc-0-disk'));
    });
    after(async () => {
      if (d) await releaseVolumes(d.driver, names.map(d.key), san.nodes);
    });

    it('activations on the storage node never meet a usage read (LVM refused them while a read mapped the pool\'s _tmeta); the figure is the blocks written, read on the storage node while another node has the pool', async () => {
      const k = d.key('vc-0-disk');
      const blocks = async (): Promise<number> => (await d.driver.usageAll([k]))[0]! / (64 * KiB);
      // the usage read as the driver runs it on the storage node, under the kernel's eye: no block
      // device may come or go during it (the read of before mapped the pool's _tmeta for a moment);
      // then a mapping of the original, which the monitor must see (it can fail)
      const watched = await execOk(a, ['sh', '-c', UEVENTS_DURING, 'sh', LVM_SCRIPTS.poolUsage, 'vlsan', `${d.driver.lvName(k)}.pool`, `vlsan/${d.driver.lvName(d.key('vc-original'))}`], T);
      const [duringRead, duringMap] = watched.split('---');
      assert.equal(duringRead!.trim(), '', `a usage read maps nothing on the storage node: ${duringRead}`);
      assert.match(duringMap!, / add /, 'the monitor sees a mapping');
      // the VM's node is the storage node (blade1, the driver's): the storage controller's usage reads run beside its activations
      let reading = true;
      let reads = 0;
      const loop = (async () => {
        while (reading) {
          await d.driver.usageAll([k]);
          reads++;
        }
      })();
      try {
        for (let i = 0; i < 3; i++) {
          const on = await d.driver.activate(k, a);
          await blockWrite(a, on.path, i * 64 * KiB, 0xa0 + i);
          await d.driver.deactivate(k, a);
        }
      } finally {
        reading = false;
        await loop;
      }
      assert.ok(reads >= 3, `usage reads ran beside the activations: ${reads}`);
      assert.equal(await blocks(), 3, 'three 64 KiB blocks written into the pool');
      // blade2 runs it; blade1 reads the figure from the SAN (dm-thin commits within a second or so)
      const onB = await d.driver.activate(k, b);
      await blockWrite(b, onB.path, 3 * 64 * KiB, 0xcc);
      let seen = 0;
      for (let i = 0; i < 30 && seen !== 4; i++) {
        seen = await blocks();
        if (seen !== 4) await new Promise((r) => setTimeout(r, 2000));
      }
      assert.equal(seen, 4, 'blade1 reads the block blade2 wrote into the pool');
      await d.driver.deactivate(k, b);
    });
  });
});
