// The storage driver conformance suite: one set of behaviours every StorageDriver must show,
// run for real on qcow2 and btrfs, on evms and lvm on full testbed nodes, and on lvm against
// recorded argument vectors. Each case checks
// the resulting state of the volumes (their content, their existence, their protection), never
// which commands were run.

import assert from 'node:assert/strict';
import type { StorageDriver, TemplateSource, VolumeInfo, VolumeKey } from '../../drivers/storage/types.js';
import { TemplateNotFoundError } from '../../drivers/storage/types.js';

export interface ConformanceHarness {
  driver: StorageDriver;
  vcDir: string;
  vcUid: string;
  /** A template whose every block (from 0 to templateBytes) holds the byte 0x11. */
  template: TemplateSource;
  templateBytes: number;
  /** Writes 64 KiB of `byte` at `offset` into the volume. Rejects if the volume refuses writes. */
  write(info: VolumeInfo, offset: number, byte: number): Promise<void>;
  /** Whether the 64 KiB at `offset` all hold `byte`. */
  holds(info: VolumeInfo, offset: number, byte: number): Promise<boolean>;
  /** Whether the original is protected against writes. */
  isReadOnly(info: VolumeInfo): Promise<boolean>;
  /** Whether the volume carries a swap signature. */
  isSwap(info: VolumeInfo): Promise<boolean>;
  /** The bytes of a config volume. */
  readConfig(info: VolumeInfo): Promise<Buffer>;
  /** Names in the VC's storage (files, subvolumes, LVs) for the leak check. */
  listVolumes(): Promise<string[]>;
  cleanup(): Promise<void>;
}

const KiB = 1024;

/** `timeoutMs`: per test (default 120 s); full nodes under TCG need more. */
export function describeDriverConformance(label: string, setup: () => Promise<ConformanceHarness>, timeoutMs = 120_000): void {
  describe(`storage driver conformance: ${label}`, function () {
    this.timeout(timeoutMs);
    let h: ConformanceHarness;
    const key = (name: string): VolumeKey => ({ vcDir: h.vcDir, vcUid: h.vcUid, name });

    before(async () => {
      h = await setup();
    });
    after(async () => {
      if (h) await h.cleanup();
    });

    it('refuses a missing template with TemplateNotFoundError and leaves nothing behind', async () => {
      const missing: TemplateSource = { path: `${h.vcDir}-nowhere/none.img`, format: 'raw' };
      await assert.rejects(h.driver.createOriginal(key('t-missing'), missing), TemplateNotFoundError);
      assert.equal(await h.driver.exists(key('t-missing')), false);
      assert.deepEqual((await h.listVolumes()).filter((n) => n.includes('t-missing')), []);
    });

    it('makes a read-only original with the template content; again is a no-op', async () => {
      const o = await h.driver.createOriginal(key('vc-original'), h.template);
      assert.equal(await h.driver.exists(key('vc-original')), true);
      assert.ok(await h.holds(o, 0, 0x11));
      assert.ok(await h.holds(o, h.templateBytes - 64 * KiB, 0x11));
      assert.ok(await h.isReadOnly(o), 'the original must be read-only');
      const again = await h.driver.createOriginal(key('vc-original'), h.template);
      assert.equal(again.path, o.path);
      assert.ok(await h.holds(again, 0, 0x11));
    });

    it('makes independent snapshots: a write into A changes neither B nor the original', async () => {
      const o = await h.driver.createOriginal(key('vc-original'), h.template);
      const a = await h.driver.snapshot(key('vc-original'), key('vc-0-disk'));
      const b = await h.driver.snapshot(key('vc-original'), key('vc-1-disk'));
      assert.notEqual(a.path, b.path);
      assert.ok(await h.holds(a, 0, 0x11));
      await h.write(a, 0, 0xaa);
      await h.write(b, 128 * KiB, 0xbb);
      assert.ok(await h.holds(a, 0, 0xaa));
      assert.ok(await h.holds(b, 0, 0x11), 'B must not see A\'s write');
      assert.ok(await h.holds(o, 0, 0x11), 'the original must not see A\'s write');
      assert.ok(await h.holds(o, 128 * KiB, 0x11), 'the original must not see B\'s write');
      assert.ok(await h.holds(a, 128 * KiB, 0x11), 'A must not see B\'s write');
    });

    it('re-creating an existing snapshot keeps its private data', async () => {
      const a = await h.driver.snapshot(key('vc-original'), key('vc-0-disk'));
      assert.ok(await h.holds(a, 0, 0xaa));
    });

    it('snapshotAll makes the missing snapshots in one go and leaves existing ones alone', async () => {
      await h.driver.snapshotAll(key('vc-original'), [key('vc-3-disk'), key('vc-0-disk'), key('vc-4-disk')]);
      const a = await h.driver.snapshot(key('vc-original'), key('vc-0-disk'));
      const c = await h.driver.snapshot(key('vc-original'), key('vc-3-disk'));
      const d = await h.driver.snapshot(key('vc-original'), key('vc-4-disk'));
      assert.ok(await h.holds(a, 0, 0xaa), 'existing snapshot untouched');
      assert.ok(await h.holds(c, 0, 0x11));
      await h.write(c, 0, 0xcc);
      assert.ok(await h.holds(d, 0, 0x11), 'batch snapshots are independent too');
      assert.deepEqual((await h.listVolumes()).filter((n) => n.includes('.tmp')), []);
    });

    it('fresh snapshots use under 1% of the template bytes', async () => {
      await h.driver.snapshot(key('vc-original'), key('vc-2-disk'));
      const used = await h.driver.usage(key('vc-2-disk'));
      assert.ok(used < h.templateBytes / 100, `fresh snapshot uses ${used} bytes of a ${h.templateBytes}-byte template`);
    });

    it('reset gives a fresh snapshot of the original and leaves the others alone', async () => {
      const a = await h.driver.reset(key('vc-original'), key('vc-0-disk'));
      assert.ok(await h.holds(a, 0, 0x11), 'reset must drop the private data');
      const b = await h.driver.snapshot(key('vc-original'), key('vc-1-disk'));
      assert.ok(await h.holds(b, 128 * KiB, 0xbb), 'other snapshots keep their data');
    });

    it('makes a swap volume with a swap signature, idempotently', async () => {
      const s = await h.driver.createSwap(key('vc-0-swap'), 64 * KiB * KiB);
      assert.ok(await h.isSwap(s));
      const again = await h.driver.createSwap(key('vc-0-swap'), 64 * KiB * KiB);
      assert.equal(again.path, s.path);
    });

    it('writes and replaces a config volume byte for byte', async () => {
      const one = Buffer.alloc(1024 * KiB, 1);
      const two = Buffer.alloc(1024 * KiB, 2);
      const c = await h.driver.writeConfig(key('vc-0-config'), one);
      assert.ok((await h.readConfig(c)).equals(one));
      const c2 = await h.driver.writeConfig(key('vc-0-config'), two);
      assert.ok((await h.readConfig(c2)).equals(two));
      // sizeBytes: the bytes, then zeros the caller did not send (a config disk's padding)
      const short = Buffer.from('config.env and firstboot.sh');
      const c3 = await h.driver.writeConfig(key('vc-0-config'), short, 1024 * KiB);
      assert.ok((await h.readConfig(c3)).equals(Buffer.concat([short, Buffer.alloc(1024 * KiB - short.length)])), 'padded with zeros to sizeBytes');
      await assert.rejects(h.driver.writeConfig(key('vc-0-config'), two, KiB), /do not fit/);
    });

    it('the batch forms make, find and measure many volumes in one call, the same as one by one', async () => {
      const swaps = await h.driver.createSwapAll([key('vc-0-swap'), key('vc-1-swap'), key('vc-2-swap')], 64 * KiB * KiB);
      assert.equal(swaps[0]!.path, (await h.driver.createSwap(key('vc-0-swap'), 64 * KiB * KiB)).path);
      for (const sw of swaps) assert.ok(await h.isSwap(sw), `${sw.path} is swap`);
      // Content ending in zeros, content without, and all zeros replacing earlier content.
      const one = Buffer.alloc(1024 * KiB);
      one.write('config of node 1');
      one[700 * KiB] = 7;
      const two = Buffer.alloc(1024 * KiB, 2);
      const zeros = Buffer.alloc(1024 * KiB);
      // the first without its zero tail, sent as sizeBytes (a config disk's padding)
      const items = [{ key: key('vc-1-config'), bytes: one.subarray(0, 700 * KiB + 1), sizeBytes: 1024 * KiB }, { key: key('vc-2-config'), bytes: two }, { key: key('vc-0-config'), bytes: zeros }];
      const cs = await h.driver.writeConfigAll(items);
      for (const [i, c] of cs.entries()) assert.ok((await h.readConfig(c)).equals(i === 0 ? one : items[i]!.bytes), `config ${i} byte for byte`);
      assert.deepEqual(
        await h.driver.existsAll([key('vc-1-swap'), key('vc-9-swap'), key('vc-2-config'), key('vc-original'), key('vc-2-disk')]),
        [true, false, true, true, true],
      );
      const measured = [key('vc-2-disk'), key('vc-9-swap'), key('vc-original'), key('vc-1-config'), key('vc-1-swap')];
      const each: number[] = [];
      for (const k of measured) each.push(await h.driver.usage(k));
      assert.deepEqual(await h.driver.usageAll(measured), each);
      assert.equal(each[1], 0);
      assert.ok(each[3]! >= 1024 * KiB, `a config volume is allocated: ${each[3]}`);
      assert.deepEqual((await h.listVolumes()).filter((n) => n.includes('.tmp')), []);
    });

    it('makes an nfs shared volume as a directory', async () => {
      const s = await h.driver.createShared(key('vc-shared'));
      assert.equal(s.format, 'dir');
      assert.equal(await h.driver.exists(key('vc-shared')), true);
    });

    it('removes every volume, one by one or in one call, idempotently, leaving no temporaries', async () => {
      const names = [
        'vc-0-disk', 'vc-1-disk', 'vc-2-disk', 'vc-3-disk', 'vc-4-disk', 'vc-0-swap', 'vc-1-swap', 'vc-2-swap',
        'vc-0-config', 'vc-1-config', 'vc-2-config', 'vc-shared', 'vc-original',
      ];
      // Snapshots before their original, as the controller orders them: half in one call.
      await h.driver.removeAll(names.slice(0, 7).map(key));
      for (const n of names.slice(7)) await h.driver.remove(key(n));
      for (const n of names) {
        assert.equal(await h.driver.exists(key(n)), false, `${n} still exists`);
        await h.driver.remove(key(n));
      }
      await h.driver.removeAll(names.map(key));
      assert.deepEqual(await h.listVolumes(), []);
      assert.equal(await h.driver.usage(key('vc-0-disk')), 0);
    });
  });
}
