// Storage benchmark (issue 6): provisioning the private disks of a 4-node and a 64-node VC from a
// 1 GiB and a 10 GiB template with each real driver (qcow2 overlays, btrfs subvolume snapshots),
// against a full `cp` of the template per node measured in the same run; plus the first-write
// throughput into a fresh snapshot against a plain file (the paper: ~7 vs 57 MB/s).
//
// Everything happens on one loop-mounted btrfs (a sparse file under $TMPDIR) so the run needs
// about 2 x the largest template in real space: the templates are filled with random data (no
// holes, no compression wins), originals are reflinked, and the baseline copies use
// `cp --reflink=never` followed by an fsync of the copy; the snapshots are fsynced alike.
// Copying 64 x 10 GiB does not fit: the baseline measures
// a subset of copies per template and extrapolates linearly; the output says which.
//
// Options: --small-gib N (default 1), --large-gib N (default 10), --nodes 4,64, --keep (do not clean).

import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BtrfsDriver } from '../../drivers/storage/btrfs-driver.js';
import { Qcow2Driver } from '../../drivers/storage/qcow2-driver.js';
import type { StorageDriver, VolumeKey } from '../../drivers/storage/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? def : def;
}
const smallGiB = Number(arg('small-gib', '1'));
const largeGiB = Number(arg('large-gib', '10'));
const nodeCounts = arg('nodes', '4,64').split(',').map(Number);
const keep = process.argv.includes('--keep');

function sh(argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * MiB });
}
function now(): number {
  return performance.now();
}
function fmtS(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

async function fillRandom(path: string, bytes: number): Promise<void> {
  const chunk = randomBytes(64 * MiB);
  const fh = await open(path, 'w');
  try {
    for (let off = 0; off < bytes; off += chunk.length) {
      // A fresh random prefix per chunk keeps every block distinct.
      randomBytes(4096).copy(chunk, 0);
      await fh.write(chunk, 0, Math.min(chunk.length, bytes - off), off);
    }
  } finally {
    await fh.close();
  }
}

const results: string[] = [];
let failures = 0;
function check(label: string, ok: boolean, detail: string): void {
  results.push(`${ok ? 'PASS' : 'FAIL'}  ${label}: ${detail}`);
  if (!ok) failures++;
}

async function main(): Promise<void> {
  const free = Number(sh(['df', '--output=avail', '-B1', tmpdir()]).trim().split('\n')[1]);
  const need = (largeGiB * 2 + smallGiB * 3 + 2) * GiB;
  if (free < need + 8 * GiB) {
    throw new Error(`${tmpdir()} has ${(free / GiB).toFixed(1)} GiB free; this run needs about ${(need / GiB).toFixed(0)} GiB plus headroom: use smaller --large-gib`);
  }
  const base = await mkdtemp(join(tmpdir(), 'vl-bench-storage-'));
  const img = join(base, 'btrfs.img');
  const mnt = join(base, 'mnt');
  let loop = '';
  let mounted = false;
  const t = new LocalTransport({ host: 'bench' });
  try {
    sh(['truncate', '-s', String(need), img]);
    loop = sh(['losetup', '--find', '--show', img]).trim();
    sh(['mkfs.btrfs', '-q', '-f', loop]);
    sh(['mkdir', '-p', mnt]);
    sh(['mount', loop, mnt]);
    mounted = true;
    console.log(`storage benchmark on a ${(need / GiB).toFixed(0)} GiB loop-mounted btrfs (${loop}), Node ${process.version}`);

    const templates: { gib: number; path: string }[] = [];
    for (const gib of [smallGiB, largeGiB]) {
      const path = join(mnt, `template-${gib}g.raw`);
      const t0 = now();
      await fillRandom(path, gib * GiB);
      sh(['sync', '-f', path]);
      console.log(`template ${gib} GiB of random data written in ${fmtS(now() - t0)}`);
      templates.push({ gib, path });
    }

    // ---- baseline: full copies (cp --reflink=never + sync), a measured subset extrapolated.
    const copyMsPer: Record<number, number> = {};
    for (const tp of templates) {
      const copies = tp.gib <= 2 ? 3 : 1;
      let total = 0;
      for (let i = 0; i < copies; i++) {
        const dst = join(mnt, `copy-${tp.gib}g-${i}.raw`);
        const t0 = now();
        sh(['cp', '--reflink=never', '--sparse=never', tp.path, dst]);
        sh(['sync', '--', dst]); // fsync: the copy is durable, as the snapshots below
        total += now() - t0;
        await rm(dst);
      }
      copyMsPer[tp.gib] = total / copies;
      console.log(`baseline cp of the ${tp.gib} GiB template: ${fmtS(copyMsPer[tp.gib]!)} per copy (mean of ${copies} measured copies; per-VC figures below are that x nodes)`);
    }

    const drivers: StorageDriver[] = [new Qcow2Driver(t), new BtrfsDriver(t)];
    const ROUNDS = 5;
    for (const driver of drivers) {
      const dirOf = (gib: number): string => join(mnt, 'vcs', driver.name, `t${gib}`);
      const keyOf = (gib: number, name: string): VolumeKey => ({ vcDir: dirOf(gib), vcUid: `bench-${gib}`, name });
      for (const tp of templates) {
        const t0 = now();
        await driver.createOriginal(keyOf(tp.gib, 'vc-original'), { path: tp.path, format: 'raw' });
        console.log(`${driver.name}: original from the ${tp.gib} GiB template in ${fmtS(now() - t0)} (one-time per VC; a reflink on btrfs)`);
        // Warm-up (untimed): first process starts, first metadata of the original.
        await driver.snapshot(keyOf(tp.gib, 'vc-original'), keyOf(tp.gib, 'warmup-disk'));
        await driver.remove(keyOf(tp.gib, 'warmup-disk'));
      }
      sh(['sync']);
      for (const n of nodeCounts) {
        // Rounds alternate between the templates so background load hits both alike; median of 5.
        const rounds: Record<number, number[]> = {};
        for (let r = 0; r < ROUNDS; r++) {
          for (const tp of templates) {
            const key = (name: string): VolumeKey => keyOf(tp.gib, name);
            sh(['sync']);
            const s0 = now();
            // As the controller does stage 2: one snapshotAll round trip for the VC's node disks.
            const keys = Array.from({ length: n }, (_, i) => key(`n${n}-${i}-disk`));
            await driver.snapshotAll(key('vc-original'), keys);
            // fsync every new disk, as the baseline fsyncs every copy.
            sh(['sync', '--', ...keys.map((k) => (driver.name === 'btrfs' ? join(driver.pathOf(k), 'disk') : driver.pathOf(k)))]);
            (rounds[tp.gib] ??= []).push(now() - s0);
            if (r < ROUNDS - 1) {
              for (let i = 0; i < n; i++) await driver.remove(key(`n${n}-${i}-disk`));
              // btrfs drops deleted subvolumes in the background: wait, so the next round is not charged for it.
              if (driver.name === 'btrfs') sh(['btrfs', 'subvolume', 'sync', mnt]);
            }
          }
        }
        const med: Record<number, number> = {};
        for (const tp of templates) {
          const ms = rounds[tp.gib]!.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
          med[tp.gib] = ms;
          const cpMs = copyMsPer[tp.gib]! * n;
          const speedup = cpMs / ms;
          console.log(`${driver.name}: ${n} node disks from ${tp.gib} GiB: ${fmtS(ms)} median of ${ROUNDS} (${fmtS(ms / n)} per node) vs cp ${fmtS(cpMs)} (${tp.gib > 2 || n > 3 ? 'extrapolated from measured copies' : 'measured'}): ${speedup.toFixed(0)}x`);
          check(`${driver.name} ${n} nodes ${tp.gib} GiB >= 100x faster than cp`, speedup >= 100, `${speedup.toFixed(0)}x`);
        }
        const ratio = med[largeGiB]! / med[smallGiB]!;
        check(`${driver.name} ${n} nodes flat in template size (${smallGiB} vs ${largeGiB} GiB, within 20%)`, Math.abs(ratio - 1) <= 0.2, `${fmtS(med[smallGiB]!)} vs ${fmtS(med[largeGiB]!)}, ratio ${ratio.toFixed(2)}`);
      }
      for (const tp of templates) {
        const used = await driver.usage(keyOf(tp.gib, `n${nodeCounts[0]}-0-disk`));
        const pct = (used / (tp.gib * GiB)) * 100;
        console.log(`${driver.name}: a fresh snapshot of the ${tp.gib} GiB template uses ${used} bytes (${pct.toFixed(4)}% of the template)`);
        check(`${driver.name} fresh snapshot < 1% of ${tp.gib} GiB`, pct < 1, `${pct.toFixed(4)}%`);
      }

      // ---- first write into a fresh snapshot (breaking the sharing) vs a fresh plain file.
      const tp = templates[0]!;
      const vcDir = join(mnt, 'vcs', driver.name, `t${tp.gib}`);
      const key = (name: string): VolumeKey => ({ vcDir, vcUid: `bench-${tp.gib}`, name });
      const writeBytes = Math.min(512 * MiB, tp.gib * GiB);
      const snap = await driver.snapshot(key('vc-original'), key('fw-disk'));
      const w0 = now();
      sh(['qemu-io', '-f', snap.format, '-c', `write -P 0x5a 0 ${writeBytes}`, '-c', 'flush', snap.path]);
      const snapMBs = writeBytes / MiB / ((now() - w0) / 1000);
      const plain = join(vcDir, 'plain.raw');
      sh(['truncate', '-s', String(writeBytes), plain]);
      const p0 = now();
      sh(['qemu-io', '-f', 'raw', '-c', `write -P 0x5a 0 ${writeBytes}`, '-c', 'flush', plain]);
      const plainMBs = writeBytes / MiB / ((now() - p0) / 1000);
      const r0 = now();
      sh(['qemu-io', '-f', snap.format, '-c', `write -P 0x5b 0 ${writeBytes}`, '-c', 'flush', snap.path]);
      const rewriteMBs = writeBytes / MiB / ((now() - r0) / 1000);
      console.log(`${driver.name}: first write of ${writeBytes / MiB} MiB into a fresh snapshot ${snapMBs.toFixed(0)} MB/s, rewrite ${rewriteMBs.toFixed(0)} MB/s, plain file ${plainMBs.toFixed(0)} MB/s (paper: ~7 vs 57 MB/s)`);
      await rm(plain);
      for (const tp2 of templates) {
        const d2 = join(mnt, 'vcs', driver.name, `t${tp2.gib}`);
        for (const n of nodeCounts) for (let i = 0; i < n; i++) await driver.remove({ vcDir: d2, vcUid: 'x', name: `n${n}-${i}-disk` });
        await driver.remove({ vcDir: d2, vcUid: 'x', name: 'fw-disk' });
        await driver.remove({ vcDir: d2, vcUid: 'x', name: 'vc-original' });
      }
    }
    console.log('');
    for (const r of results) console.log(r);
    console.log(`${results.length - failures} of ${results.length} targets met`);
  } finally {
    await t.close();
    if (!keep) {
      if (mounted) sh(['umount', mnt]);
      if (loop) sh(['losetup', '-d', loop]);
      await rm(base, { recursive: true, force: true });
    } else {
      console.log(`kept ${base} (mounted on ${mnt}, ${loop})`);
    }
  }
  if (failures > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exitCode = 2;
});
