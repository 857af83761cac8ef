// The evms driver for real (tier: *.full.test.ts): device-mapper snapshots with a persistent
// exception store on the SAN disk of two full testbed nodes (QEMU TCG machines running Xen with a
// Debian dom0, one shared raw SAN image). One testbed for the whole file.
//
// - the storage driver conformance suite, with the driver acting on blade1 and every content check
//   made through the device blade1 maps (activated there first, as a VM's node would);
// - the paper's activation semantics (section 3.2) across the two nodes: a snapshot is mapped only
//   on the node that runs its VM, moves (deactivate here, activate there) with its data, never
//   resets on activation, the original is read-only on every node, a reset needs the snapshot
//   inactive everywhere.
// Needs root and the node image (built on first use, then cached).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { EvmsDriver } from '../../drivers/storage/evms-driver.js';
import { ActiveElsewhereError, type VolumeInfo, type VolumeKey } from '../../drivers/storage/types.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';
import { SAN_DEVICE } from '../../hack/lib/full-node.js';
import { describeDriverConformance } from './driver-conformance.js';
import { blockHolds, blockReadOnly, blockWrite, dmNames, sanTestbedUp, type SanTestbed } from './san-testbed.js';
import { listTree } from './storage-fixtures.js';

const MiB = 1024 * 1024;
const KiB = 1024;

/** A process on node `t` holding `dev` open (as a hypervisor does); resolves once it has it open, to its stopper. */
async function holdOpen(t: Transport, dev: string): Promise<() => Promise<void>> {
  const pidFile = `/tmp/hold-${Math.random().toString(36).slice(2)}`;
  const p = t.spawn(['sh', '-c', 'exec 3<"$1"; echo $$ > "$2"; exec sleep 600', 'sh', dev, pidFile]);
  void p.done.catch(() => undefined);
  await execOk(t, ['sh', '-c', 'for i in $(seq 600); do [ -s "$1" ] && exit 0; sleep 0.2; done; exit 1', 'sh', pidFile], { timeoutMs: 180_000 });
  return async () => {
    await execOk(t, ['sh', '-c', 'kill "$(cat "$1")"; rm -f "$1"', 'sh', pidFile], { timeoutMs: 180_000 });
    p.kill();
  };
}

describe('evms driver on device-mapper, on the SAN disk of two full nodes', function () {
  this.timeout(900_000);
  let san: SanTestbed;

  before(async () => {
    const t0 = Date.now();
    san = await sanTestbedUp({ sanMiB: 2048, templateBytes: 64 * MiB });
    process.stderr.write(`      (2 full nodes up in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  });
  after(async () => {
    await san?.down();
  });

  /** The driver on blade1 and the VC directory of a fresh uid. */
  const setup = (): { driver: EvmsDriver; vcDir: string; uid: string; key: (n: string) => VolumeKey } => {
    const uid = randomUUID();
    const vcDir = join(san.tb.sanDir, 'vcs', 'default', `vc-${uid}`);
    const driver = new EvmsDriver(san.nodes[0]!, { sanDevice: SAN_DEVICE });
    return { driver, vcDir, uid, key: (name) => ({ vcDir, vcUid: uid, name }) };
  };

  describeDriverConformance('evms (dm snapshots on the SAN disk, full nodes)', async () => {
    const { driver, vcDir, uid, key } = setup();
    const a = san.nodes[0]!;
    // The volume a path names (a snapshot's mapping or an LV), activated on blade1 for the check.
    const onA = async (info: VolumeInfo): Promise<string> => {
      const m = /^\/dev\/(?:mapper\/vlsnap-|vlsan\/)[0-9a-f-]{36}_(.+)$/.exec(info.path);
      if (!m) throw new Error(`not an evms volume path: ${info.path}`);
      if ((await a.exec(['test', '-b', info.path], { timeoutMs: 180_000 })).code === 0) return info.path;
      return (await driver.activate(key(m[1]!), a)).path;
    };
    return {
      driver,
      vcDir,
      vcUid: uid,
      template: { path: san.template, format: 'qcow2' },
      templateBytes: san.templateBytes,
      write: async (info, offset, byte) => blockWrite(a, await onA(info), offset, byte),
      holds: async (info, offset, byte) => blockHolds(a, await onA(info), offset, byte),
      isReadOnly: async (info) => blockReadOnly(a, await onA(info)),
      isSwap: async (info) => (await execOk(a, ['blkid', '-p', '-o', 'value', '-s', 'TYPE', await onA(info)], { timeoutMs: 180_000 })).trim() === 'swap',
      readConfig: async (info) => (await import('node:fs/promises')).readFile(info.path),
      listVolumes: async () => {
        const lvs = await execOk(a, ['lvs', '--noheadings', '-o', 'lv_name', 'vlsan'], { timeoutMs: 180_000 }).catch(() => '');
        const mine = lvs.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(uid));
        const maps = [...(await dmNames(san.nodes[0]!, uid)), ...(await dmNames(san.nodes[1]!, uid))];
        return [...mine, ...maps, ...(await listTree(vcDir))];
      },
      cleanup: async () => undefined,
    };
  }, 600_000);

  describe('activation follows the VM (paper, section 3.2)', () => {
    let d: ReturnType<typeof setup>;
    let orig: VolumeInfo;
    before(async () => {
      d = setup();
      orig = await d.driver.createOriginal(d.key('vc-original'), { path: san.template, format: 'qcow2' });
      await d.driver.snapshot(d.key('vc-original'), d.key('vc-0-disk'));
      await d.driver.snapshot(d.key('vc-original'), d.key('vc-1-disk'));
    });
    after(async () => {
      if (!d) return;
      for (const t of san.nodes) for (const n of ['vc-0-disk', 'vc-1-disk', 'vc-original']) await d.driver.deactivate(d.key(n), t).catch(() => undefined);
      await d.driver.removeAll(['vc-0-disk', 'vc-1-disk', 'vc-original'].map(d.key)).catch(() => undefined);
    });

    it('a fresh snapshot is mapped nowhere; activated, it is mapped on that node only', async () => {
      const [a, b] = san.nodes as [typeof san.nodes[0], typeof san.nodes[0]];
      assert.deepEqual([...(await dmNames(a, d.uid)), ...(await dmNames(b, d.uid))], []);
      assert.equal(await d.driver.activeOn(d.key('vc-0-disk')), undefined);
      const s = await d.driver.activate(d.key('vc-0-disk'), a);
      assert.deepEqual(await dmNames(a, d.uid), [d.driver.dmName(d.key('vc-0-disk'))]);
      assert.deepEqual(await dmNames(b, d.uid), []);
      assert.equal(await d.driver.activeOn(d.key('vc-0-disk')), 'blade1');
      assert.ok(await blockHolds(a, s.path, 0, 0x11));
    });

    it('moves between nodes with its data: written via blade1, read via blade2; the original unchanged', async () => {
      const [a, b] = san.nodes as [typeof san.nodes[0], typeof san.nodes[0]];
      const k = d.key('vc-0-disk');
      const onA = await d.driver.activate(k, a);
      await blockWrite(a, onA.path, 0, 0xaa);
      await blockWrite(a, onA.path, san.templateBytes - 64 * KiB, 0xab);
      // blade2 may not map it while blade1 does
      await assert.rejects(d.driver.activate(k, b), ActiveElsewhereError);
      assert.deepEqual(await dmNames(b, d.uid), []);
      await d.driver.deactivate(k, a);
      assert.deepEqual(await dmNames(a, d.uid), []);
      assert.equal(await d.driver.activeOn(k), undefined);
      const onB = await d.driver.activate(k, b);
      assert.equal(await d.driver.activeOn(k), 'blade2');
      assert.ok(await blockHolds(b, onB.path, 0, 0xaa), 'blade2 reads what blade1 wrote');
      assert.ok(await blockHolds(b, onB.path, san.templateBytes - 64 * KiB, 0xab));
      assert.ok(await blockHolds(b, onB.path, 128 * KiB, 0x11), 'unwritten blocks come from the original');
      await blockWrite(b, onB.path, 128 * KiB, 0xbb);
      // the original, on both nodes, as a VM could never see it: unchanged
      const o = await d.driver.activate(d.key('vc-original'), b);
      assert.ok(await blockHolds(b, o.path, 0, 0x11));
      assert.ok(await blockHolds(b, o.path, 128 * KiB, 0x11));
      assert.equal(o.path, orig.path);
      // and back to blade1: activation never resets, both nodes' writes are there
      await d.driver.deactivate(k, b);
      const again = await d.driver.activate(k, a);
      assert.ok(await blockHolds(a, again.path, 0, 0xaa));
      assert.ok(await blockHolds(a, again.path, 128 * KiB, 0xbb));
      assert.ok(await blockHolds(a, (await d.driver.activate(d.key('vc-original'), a)).path, 0, 0x11));
      // the other VM's snapshot saw none of it
      const other = await d.driver.activate(d.key('vc-1-disk'), b);
      assert.ok(await blockHolds(b, other.path, 0, 0x11));
      assert.ok(await blockHolds(b, other.path, 128 * KiB, 0x11));
      await d.driver.deactivate(d.key('vc-1-disk'), b);
    });

    it('the original is read-only on every node', async () => {
      for (const t of san.nodes) {
        const o = await d.driver.activate(d.key('vc-original'), t);
        assert.ok(await blockReadOnly(t, o.path), `${t.host} maps the original read-only`);
      }
    });

    it('reset and remove are refused while the snapshot is active on another node; reset once inactive gives a fresh snapshot', async () => {
      const [a, b] = san.nodes as [typeof san.nodes[0], typeof san.nodes[0]];
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
      const [a, b] = san.nodes as [typeof san.nodes[0], typeof san.nodes[0]];
      const k = d.key('vc-1-disk');
      const s = await d.driver.activate(k, b);
      await blockWrite(b, s.path, 256 * KiB, 0xcc);
      // blade2 "dies": its mapping goes without a deactivation (the record still names it)
      await execOk(b, ['dmsetup', 'remove', d.driver.dmName(k)], { timeoutMs: 180_000 });
      await assert.rejects(d.driver.activate(k, a), ActiveElsewhereError);
      const taken = await d.driver.activate(k, a, { takeOver: true });
      assert.equal(await d.driver.activeOn(k), 'blade1');
      assert.ok(await blockHolds(a, taken.path, 256 * KiB, 0xcc), 'what was written before the death is on the SAN');
      await d.driver.deactivate(k, a);
    });

    it('live migration: the target opens the device early, the snapshot moves at the switchover while both keep it open', async () => {
      const [a, b] = san.nodes as [typeof san.nodes[0], typeof san.nodes[0]];
      const k = d.key('vc-1-disk');
      const src = await d.driver.activate(k, a);
      // the source's and the target's hypervisor hold the device open (here: a process each)
      const holdA = await holdOpen(a, src.path);
      const dst = await d.driver.prepareIncoming(k, b);
      assert.equal(dst.path, src.path);
      const holdB = await holdOpen(b, dst.path);
      try {
        const sizeOn = async (t: typeof a): Promise<string> => (await execOk(t, ['blockdev', '--getsize64', dst.path], { timeoutMs: 180_000 })).trim();
        assert.equal(await sizeOn(b), await sizeOn(a), 'the incoming device has the snapshot\'s size');
        assert.equal(await blockHolds(b, dst.path, 0, 0x11), false, 'the target reads nothing before the switchover');
        // the last writes of the source before it pauses
        await blockWrite(a, src.path, 512 * KiB, 0xdd);
        await d.driver.handOver(k, a, b);
        assert.equal(await d.driver.activeOn(k), 'blade2');
        assert.ok(await blockHolds(b, dst.path, 512 * KiB, 0xdd), 'the target reads the source\'s last write');
        assert.ok(await blockHolds(b, dst.path, 256 * KiB, 0xcc), 'and what was written before');
        assert.equal(await blockHolds(a, src.path, 512 * KiB, 0xdd), false, 'the source reads nothing any more');
      } finally {
        await holdA();
        await holdB();
      }
      await d.driver.deactivate(k, a);
      assert.deepEqual(await dmNames(a, d.uid), []);
      assert.equal(await d.driver.activeOn(k), 'blade2', 'unmapping the source leaves the target\'s record');
      await d.driver.deactivate(k, b);
    });

    it('removal leaves no LV, no mapping and no record on either node', async () => {
      for (const t of san.nodes) for (const n of ['vc-0-disk', 'vc-1-disk', 'vc-original']) await d.driver.deactivate(d.key(n), t);
      await d.driver.removeAll(['vc-0-disk', 'vc-1-disk', 'vc-original'].map(d.key));
      const lvs = await execOk(san.nodes[1]!, ['lvs', '--noheadings', '-o', 'lv_name', 'vlsan'], { timeoutMs: 180_000 });
      assert.ok(!lvs.includes(d.uid), lvs);
      for (const t of san.nodes) assert.deepEqual(await dmNames(t, d.uid), []);
      assert.deepEqual(await listTree(d.vcDir), []);
    });
  });
});
