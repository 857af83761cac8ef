// Storage benchmark on the SAN (`hack/bench-storage --san`, issue 17 item 6): the paper's storage
// figures side by side for evms (dm snapshots), lvm (thin) and qcow2, on a full testbed node (a
// QEMU TCG machine running Xen with a Debian dom0; the SAN is a sparse raw image every node sees as
// a virtio disk; qcow2 lives on the storage root, the testbed's shared directory over virtio-9p,
// which is where the qcow2 driver keeps it on full nodes).
//
// 1. Snapshot creation against a full copy, for originals of --small-gib and --large-gib (default
//    1 and 10): the driver call as the controller makes it (over SSH, every command of it), the
//    core timed inside the node (evms, lvm: the driver's own node command for one snapshot, with
//    the driver's arguments: everything of the driver call but its one `lvs` and the SSH round
//    trips; qcow2: `qemu-img create`), and the copy loop on the same medium (dd of the
//    original onto a new LV of the SAN with O_DIRECT; cp on the storage root for qcow2). Medians of
//    3. The originals are not filled (that would take long under TCG): a copy of unwritten blocks
//    still writes every byte, while reading them is cheap, so the copy is if anything
//    underestimated, and the snapshot figures do not depend on the content. Copies on the
//    storage root above --copy-gib are extrapolated (see below).
// 2. Throughput, `qemu-img bench` inside the node (1 MiB requests, depth 1, O_DIRECT where the
//    medium has it) over --io-mib (default 256): sequential write and read on a plain volume;
//    into a snapshot of an original whose first half holds data: fresh writes (the second half),
//    the first overwrite of original data, and its rewrite.
//
// Prints a table (markdown) and PASS/FAIL lines for the issue's targets; exits 1 on a FAIL.
// Options: --small-gib N, --large-gib N, --io-mib N (default 128), --copy-gib N (copies on the
// storage root up to N GiB measured, larger ones extrapolated linearly; default 1), --keep.
// Every LVM command here carries the drivers' settings (lvm-config.ts), as the drivers' own do.

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVMS_SCRIPTS, EvmsDriver } from '../../drivers/storage/evms-driver.js';
import { lvm } from '../../drivers/storage/lvm-config.js';
import { LVM_SCRIPTS, LvmDriver, poolNames } from '../../drivers/storage/lvm-driver.js';
import { Qcow2Driver } from '../../drivers/storage/qcow2-driver.js';
import type { StorageDriver, VolumeKey } from '../../drivers/storage/types.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';
import { SAN_DEVICE } from '../lib/full-node.js';
import { testbedDown, testbedUp } from '../lib/testbed.js';

const MiB = 1024 ** 2;
const VG = 'vlsan';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? def : def;
}
const sizes = [Number(arg('small-gib', '1')), Number(arg('large-gib', '10'))];
const ioMiB = Number(arg('io-mib', '128'));
const copyGiB = Number(arg('copy-gib', '1'));
const keep = process.argv.includes('--keep');
const ROUNDS = 3;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmtS = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

/** Runs a shell script on the node and returns how long its timed part took (ms), measured there. */
async function timedOnNode(t: Transport, script: string, ...args: string[]): Promise<number> {
  const out = await execOk(t, ['sh', '-c', `s=$(date +%s%N); ${script} >/dev/null || exit 1; e=$(date +%s%N); echo $(((e - s) / 1000))`, 'sh', ...args], { timeoutMs: 0 });
  return Number(out.trim().split('\n').pop()) / 1000;
}

/** MB/s (10^6 bytes per second) of a qemu-img bench run: `count` requests of 1 MiB at `offsetMiB`. */
async function ioBench(t: Transport, file: string, fmt: string, cache: string, write: boolean, offsetMiB: number, count: number): Promise<number> {
  const argv = ['qemu-img', 'bench', '-f', fmt, '-t', cache, '-c', String(count), '-s', '1M', '-d', '1', '-o', String(offsetMiB * MiB), '-S', '1M'];
  if (write) argv.push('-w', '--pattern=170');
  const out = await execOk(t, [...argv, file], { timeoutMs: 0 });
  const sec = Number(/Run completed in ([\d.]+) seconds/.exec(out)?.[1]);
  if (!(sec > 0)) throw new Error(`qemu-img bench said: ${out}`);
  return (count * MiB) / sec / 1e6;
}

async function main(): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'vl-bench-san-'));
  const dir = join(base, 'tb');
  const sanMiB = (sizes[1]! * 6 + sizes[0]! * 6 + 16) * 1024;
  let t: SshTransport | undefined;
  const rows: string[][] = [];
  const io: string[][] = [];
  const results: string[] = [];
  let failures = 0;
  const check = (label: string, ok: boolean, detail: string): void => {
    results.push(`${ok ? 'PASS' : 'FAIL'}  ${label}: ${detail}`);
    if (!ok) failures++;
  };
  try {
    const tb = await testbedUp({ nodes: 1, dir, full: { sanMiB, bootTimeoutMs: 600_000 } });
    const n = tb.nodes[0]!;
    t = new SshTransport({ host: n.name, address: n.address, port: n.port, identityFile: tb.identityFile, hostKey: n.hostKey, connectTimeoutMs: 120_000, keepaliveIntervalMs: 40_000 });
    const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`SAN benchmark on ${n.name} (full testbed node, TCG), SAN ${sanMiB} MiB sparse, ${new Date().toISOString()}, this machine's load average ${load()}`);
    await execOk(t, lvm('pvcreate', '-y', SAN_DEVICE));
    await execOk(t, lvm('vgcreate', '--setautoactivation', 'n', VG, SAN_DEVICE));
    await execOk(t, lvm('lvcreate', '--type', 'thin-pool', '-L', `${sizes[1]! + sizes[0]! + 4}g`, '-n', 'pool', VG));
    const root = join(tb.sanDir, 'bench');
    await execOk(t, ['mkdir', '-p', root]);

    const drivers: { d: StorageDriver; label: string }[] = [
      { d: new EvmsDriver(t, { vg: VG }), label: 'evms (dm snapshot)' },
      { d: new LvmDriver(t, { vg: VG, thinPool: 'pool' }), label: 'lvm (thin)' },
      { d: new Qcow2Driver(t), label: 'qcow2 (storage root)' },
    ];
    const keyOf = (drv: string, gib: number, name: string): VolumeKey => ({ vcDir: join(root, drv, `t${gib}`), vcUid: `b${gib}${drv}`, name });

    // ---- 1. snapshot creation vs full copy. On the SAN every copy is measured. On the storage
    // root (virtio-9p, qcow2's medium) copies of up to --copy-gib are measured and a larger one is
    // extrapolated linearly from the largest measured (a copy's time is linear in its size; 10 GiB
    // over 9p under TCG takes most of an hour here); the table says which.
    const copyMs: Record<string, Record<number, number>> = { block: {}, file: {} };
    const copyNote: Record<number, string> = {};
    for (const gib of sizes) {
      // the copy loop on the SAN: dd of a linear LV onto a new one, O_DIRECT both sides
      await execOk(t, lvm('lvcreate', '-y', '-L', `${gib}g`, '-n', `copysrc${gib}`, VG));
      await execOk(t, lvm('lvcreate', '-y', '-L', `${gib}g`, '-n', `copydst${gib}`, VG));
      copyMs.block![gib] = await timedOnNode(t, 'dd if="$1" of="$2" bs=4M iflag=direct oflag=direct status=none', `/dev/${VG}/copysrc${gib}`, `/dev/${VG}/copydst${gib}`);
      await execOk(t, lvm('lvremove', '-y', `${VG}/copysrc${gib}`, `${VG}/copydst${gib}`));
      console.log(`full copy of ${gib} GiB on the SAN: ${fmtS(copyMs.block![gib]!)}`);
    }
    const measured = sizes.filter((g) => g <= copyGiB);
    if (measured.length === 0) throw new Error(`--copy-gib ${copyGiB} measures no copy on the storage root: it must be at least --small-gib`);
    for (const gib of measured) {
      // the copy on the storage root: every byte written, then synced
      await execOk(t, ['truncate', '-s', `${gib}G`, join(root, `copysrc-${gib}g.raw`)]);
      copyMs.file![gib] = await timedOnNode(t, 'cp --sparse=never "$1" "$2" && sync "$2"', join(root, `copysrc-${gib}g.raw`), join(root, `copy-${gib}g.raw`));
      await execOk(t, ['rm', '-f', join(root, `copy-${gib}g.raw`), join(root, `copysrc-${gib}g.raw`)]);
      copyNote[gib] = 'measured';
      console.log(`full copy of ${gib} GiB on the storage root: ${fmtS(copyMs.file![gib]!)}`);
    }
    const ref = measured[measured.length - 1]!;
    for (const gib of sizes.filter((g) => g > copyGiB)) {
      copyMs.file![gib] = (copyMs.file![ref]! * gib) / ref;
      copyNote[gib] = `extrapolated from ${ref} GiB`;
      console.log(`full copy of ${gib} GiB on the storage root: ${fmtS(copyMs.file![gib]!)} (extrapolated from ${ref} GiB)`);
    }
    const snapMs: Record<string, Record<number, { call: number; core: number }>> = {};
    for (const { d } of drivers) {
      snapMs[d.name] = {};
      for (const gib of sizes) {
        const key = (name: string): VolumeKey => keyOf(d.name, gib, name);
        // The original made directly (its content does not matter to a snapshot; filling 10 GiB
        // under TCG would take long); createOriginal then finds it and only checks it is read-only.
        const lv = `${VG}/b${gib}${d.name}_vc-original`;
        // evms and lvm: a linear original (lvm's snapshots take it as their external origin),
        // unmapped as the driver leaves one
        if (d.name !== 'qcow2') await execOk(t, lvm('lvcreate', '-y', '-an', '-Zn', '-Wn', '-L', `${gib}g`, '-n', `b${gib}${d.name}_vc-original`, VG));
        else {
          await execOk(t, ['mkdir', '-p', key('x').vcDir]);
          await execOk(t, ['truncate', '-s', `${gib}G`, d.pathOf(key('vc-original'))]);
          await execOk(t, ['chmod', '0444', d.pathOf(key('vc-original'))]);
        }
        if (d.name !== 'qcow2') await execOk(t, lvm('lvchange', '-p', 'r', lv));
        await d.createOriginal(key('vc-original'), { path: '/nonexistent-template-not-read', format: 'raw' });
        const calls: number[] = [];
        const cores: number[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          const s0 = performance.now();
          await d.snapshot(key('vc-original'), key(`r${r}-disk`));
          calls.push(performance.now() - s0);
          // the core: the driver's own node command for one snapshot (evms: the store made
          // unmapped, its header zeroed, renamed into place; lvm: its pool, then the thin
          // snapshot), with the driver's arguments, timed inside the node
          const orig = d.name === 'qcow2' ? d.pathOf(key('vc-original')) : `${VG}/b${gib}${d.name}_vc-original`;
          const origin = { lv_name: `b${gib}${d.name}_vc-original`, lv_size: String(gib * 1024 ** 3) };
          const nodeScript = (script: string, args: string[]): Promise<number> => timedOnNode(t!, 'x="$1"; shift; sh -c "$x" sh "$@"', script, ...args);
          if (d instanceof EvmsDriver) {
            cores.push(await nodeScript(EVMS_SCRIPTS.snapshot, d.snapshotArgs(`core${r}.tmp`, `core${r}`, origin, key('x').vcDir)));
            await execOk(t, lvm('lvremove', '-y', `${VG}/core${r}`));
          } else if (d instanceof LvmDriver) {
            cores.push(await nodeScript(LVM_SCRIPTS.snapshot, d.snapshotArgs(`core${r}`, poolNames(`core${r}`)[0], origin, true, key('x').vcDir)));
            await execOk(t, lvm('lvremove', '-y', `${VG}/core${r}`, `${VG}/${poolNames(`core${r}`)[0]}`));
          } else {
            const ov = join(root, `core${r}.qcow2`);
            cores.push(await timedOnNode(t, 'qemu-img create -q -f qcow2 -F raw -b "$1" "$2"', orig, ov));
            await execOk(t, ['rm', '-f', ov]);
          }
        }
        snapMs[d.name]![gib] = { call: median(calls), core: median(cores) };
        console.log(`${d.name}: snapshot of ${gib} GiB: driver call ${fmtS(median(calls))} (over SSH), core command ${fmtS(median(cores))} (in the node)`);
        await d.removeAll([...Array.from({ length: ROUNDS }, (_, r) => key(`r${r}-disk`)), key('vc-original')]);
      }
    }
    for (const { d, label } of drivers) {
      const medium = d.name === 'qcow2' ? 'file' : 'block';
      rows.push([label, ...sizes.flatMap((g) => {
        const s = snapMs[d.name]![g]!;
        return [fmtS(s.core), fmtS(s.call), fmtS(copyMs[medium]![g]!), `${(copyMs[medium]![g]! / s.core).toFixed(0)}x / ${(copyMs[medium]![g]! / s.call).toFixed(0)}x`];
      })]);
      const [small, large] = sizes.map((g) => snapMs[d.name]![g]!);
      const big = sizes[1]!;
      check(`${d.name}: snapshot of ${big} GiB under 1 s`, large!.core < 1000, `core ${fmtS(large!.core)}, driver call ${fmtS(large!.call)}`);
      check(`${d.name}: snapshot of ${big} GiB >= 100x faster than the copy`, copyMs[medium]![big]! / large!.core >= 100, `${(copyMs[medium]![big]! / large!.core).toFixed(0)}x (core), ${(copyMs[medium]![big]! / large!.call).toFixed(0)}x (driver call)`);
      check(`${d.name}: snapshot time flat in the original's size`, large!.core < Math.max(2 * small!.core, small!.core + 200), `${fmtS(small!.core)} at ${sizes[0]} GiB, ${fmtS(large!.core)} at ${big} GiB`);
    }

    // ---- 2. throughput
    const half = ioMiB; // the original: `half` MiB of data, then `half` MiB never written
    for (const { d, label } of drivers) {
      const key = (name: string): VolumeKey => keyOf(d.name, 0, name);
      // the template on the node's own disk (sparse, and read there fast)
      const tmpl = '/var/tmp/template-io.raw';
      await execOk(t, ['truncate', '-s', `${2 * half}M`, tmpl]);
      const orig = await d.createOriginal(key('vc-original'), { path: tmpl, format: 'raw' });
      // the original's first half holds data (written before it is made read-only: the driver's
      // original is a copy of the template, so the data goes into the template)
      void orig;
      await d.removeAll([key('vc-original')]);
      await execOk(t, ['sh', '-c', 'dd if=/dev/urandom of="$1" bs=1M count="$2" conv=notrunc status=none', 'sh', tmpl, String(half)]);
      await d.createOriginal(key('vc-original'), { path: tmpl, format: 'raw' });
      let plain: { file: string; fmt: string };
      let snap: { file: string; fmt: string };
      if (d.name === 'qcow2') {
        const p = join(root, 'plain.raw');
        await execOk(t, ['truncate', '-s', `${2 * half}M`, p]);
        plain = { file: p, fmt: 'raw' };
        snap = { file: (await d.snapshot(key('vc-original'), key('vc-0-disk'))).path, fmt: 'qcow2' };
      } else {
        const lv = d.name === 'evms' ? lvm('lvcreate', '-y', '-L', `${2 * half}m`, '-n', 'plain', VG) : lvm('lvcreate', '-y', '--type', 'thin', '-V', `${2 * half}m`, '--thinpool', `${VG}/pool`, '-n', 'plain');
        await execOk(t, lv);
        plain = { file: `/dev/${VG}/plain`, fmt: 'raw' };
        await d.snapshot(key('vc-original'), key('vc-0-disk'));
        const path = d.activation ? (await d.activation.activate(key('vc-0-disk'), t)).path : d.pathOf(key('vc-0-disk'));
        snap = { file: path, fmt: 'raw' };
      }
      const cache = d.name === 'qcow2' ? 'writethrough' : 'none';
      const count = half;
      const w = await ioBench(t, plain.file, plain.fmt, cache, true, 0, count);
      const rd = await ioBench(t, plain.file, plain.fmt, cache, false, 0, count);
      const fresh = await ioBench(t, snap.file, snap.fmt, cache, true, half, count);
      const first = await ioBench(t, snap.file, snap.fmt, cache, true, 0, count);
      const again = await ioBench(t, snap.file, snap.fmt, cache, true, 0, count);
      io.push([label, w.toFixed(0), rd.toFixed(0), fresh.toFixed(0), first.toFixed(0), again.toFixed(0)]);
      console.log(`${d.name}: plain write ${w.toFixed(0)} MB/s, read ${rd.toFixed(0)} MB/s; snapshot: fresh ${fresh.toFixed(0)}, first overwrite ${first.toFixed(0)}, rewrite ${again.toFixed(0)} MB/s`);
      if (d.name === 'lvm') check('lvm: first overwrite into a thin snapshot >= half the plain write speed', first >= w / 2, `${first.toFixed(0)} vs ${w.toFixed(0)} MB/s`);
      if (d.activation) await d.activation.deactivate(key('vc-0-disk'), t);
      await d.removeAll([key('vc-0-disk'), key('vc-original')]);
      if (d.name === 'qcow2') await execOk(t, ['rm', '-f', plain.file]);
      else await execOk(t, lvm('lvremove', '-y', `${VG}/plain`));
    }

    const head = sizes.flatMap((g) => [`${g} GiB: core`, `${g} GiB: driver call`, `${g} GiB: full copy`, `${g} GiB: copy / snapshot`]);
    console.log(`\n| snapshot creation | ${head.join(' | ')} |\n|---|${head.map(() => '---').join('|')}|`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(`\nFull copies on the SAN measured; on the storage root: ${sizes.map((g) => `${g} GiB ${copyNote[g]}`).join(', ')}. core: the snapshot's node command (evms, lvm: the driver's own script; qcow2: qemu-img create) timed inside the node; driver call: the driver's snapshot() over SSH, every command of it.`);
    console.log(`\n| MB/s (${half} MiB, 1 MiB requests) | plain write | plain read | snapshot: fresh write | snapshot: first overwrite | snapshot: rewrite |\n|---|---|---|---|---|---|`);
    for (const r of io) console.log(`| ${r.join(' | ')} |`);
    console.log('');
    for (const r of results) console.log(r);
    console.log(`load average at the end: ${load()}`);
  } finally {
    await t?.close();
    if (!keep) {
      await testbedDown(dir).catch((e) => console.error(`testbed down: ${(e as Error).message}`));
      await rm(base, { recursive: true, force: true });
    } else console.log(`testbed left up in ${dir}`);
  }
  if (failures > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(2);
});
