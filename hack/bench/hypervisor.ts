// Hypervisor benchmark (QemuDriver, TCG, the reference guest), each figure with a baseline measured
// in the same run:
// - boot-to-READY of 1, 2, 4 and 8 guests started together, against one bare qemu-system-x86_64
//   started directly (no driver, no Transport) with the same guest and disks;
// - suspend (state to a file) and resume, against copying a file of the same size on the same storage;
// - live migration of four guests (MIGRATION_ROWS): QEMU's own downtime and total time, and our
//   end-to-end time against QEMU's total for the same migration (target ratio <= 1.5), with where
//   our time went (MigrationResult.phasesMs) and, as the floor of the preparation, QEMU itself
//   starting as a migration target. Our end to end is measured as the migration controller lives
//   it: the target is prepared while the Migration is Pending (prepareMigration), and the clock
//   runs from run() (the Running record) until the domain runs only on the target; migrate() in
//   one call (the target's start on the clock) alternates with it and is printed beside it.
//
// usage: hack/bench-hypervisor [--testbed] [--max N] [--migrations K]
//   --testbed: two testbed nodes over SSH (root; namespaces) instead of two local nodes.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildQemuArgv, domainPaths } from '../../drivers/hypervisor/qemu-argv.js';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import type { DomainSpec } from '../../drivers/hypervisor/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { guestEnv, makeNodeDisks, referenceGuest } from '../../test/hypervisor/node-disks.js';
import { testbedDown, testbedUp, type TestbedNode } from '../lib/testbed.js';
import { bareQemuBoot } from './bare-qemu-boot.js';

const args = process.argv.slice(2);
const useTestbed = args.includes('--testbed');
const maxGuests = Number(args[args.indexOf('--max') + 1] ?? 8) || 8;
/** Migrations per guest and way of migrating (prepared, migrate() in one call); even keeps both ways balanced. */
const migrations = Number(args[args.indexOf('--migrations') + 1] ?? 4) || 4;
const READY = /VIRTUALINUX-READY/;

const dir = mkdtempSync(join(tmpdir(), 'vc-bench-hv-'));
const g = referenceGuest();
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The migrated guests: the smallest (fixed costs dominate), API.md's example VM idle and busy, a larger one. */
const MIGRATION_ROWS = [
  { label: 'the smallest guest: fixed costs dominate', memoryMiB: 128, workMiB: 64, busyMiB: 0 },
  { label: "API.md's example VM size", memoryMiB: 256, workMiB: 96, busyMiB: 0 },
  { label: "API.md's example VM size, at work", memoryMiB: 256, workMiB: 96, busyMiB: 16 },
  { label: 'a larger guest', memoryMiB: 1024, workMiB: 448, busyMiB: 0 },
] as const;

/** Median of 5 starts of QEMU as a migration target, the argv our driver uses, straight on this machine. */
function qemuTargetStart(san: string): number {
  const sp = specFor('floor', san, 0);
  const paths = domainPaths(join(dir, 'floor-run'), sp.name);
  mkdirSync(paths.dir, { recursive: true });
  const argv = buildQemuArgv(sp, paths, { accel: 'tcg', incoming: true });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    execFileSync('qemu-system-x86_64', argv, { stdio: 'ignore' }); // -daemonize: returns once QEMU is up
    times.push(Math.round(performance.now() - t0));
    process.kill(Number(readFileSync(paths.pidFile, 'utf8').trim()), 'SIGKILL');
    rmSync(paths.pidFile, { force: true });
  }
  return median(times);
}

function specFor(name: string, san: string, i: number, firstboot = ''): DomainSpec {
  const disks = makeNodeDisks(join(san, name), guestEnv(name, `198.19.7.${10 + i}`), firstboot);
  return {
    name: `bench.${name}`,
    vcpus: 1,
    memoryMiB: 128,
    boot: { kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline },
    disks: {
      root: { path: disks.root, format: 'qcow2' },
      swap: { path: disks.swap, format: 'raw' },
      config: { path: disks.config, format: 'raw', readOnly: true },
    },
  };
}

/** Baseline: one bare QEMU with the same guest, READY watched on its stdout serial. */
function bareBoot(san: string, name: string): Promise<number> {
  return bareQemuBoot(specFor(name, san, 0));
}

async function nodes(): Promise<{ a: QemuDriver; b: QemuDriver; san: string; done: () => Promise<void> }> {
  if (!useTestbed) {
    const mk = (n: string): QemuDriver =>
      new QemuDriver({ transport: new LocalTransport({ host: n }), runRoot: join(dir, n), migrationAddress: '127.0.0.1', accel: 'tcg' });
    const a = mk('node-a');
    const b = mk('node-b');
    return { a, b, san: join(dir, 'san'), done: async () => { await a.transport.close(); await b.transport.close(); } };
  }
  const tbDir = join(dir, 'testbed');
  const tb = await testbedUp({ nodes: 2, dir: tbDir });
  const mk = (n: TestbedNode): QemuDriver =>
    new QemuDriver({
      transport: new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey }),
      runRoot: join(n.stateDir, 'run'),
      migrationAddress: n.address,
      accel: 'tcg',
    });
  const a = mk(tb.nodes[0]!);
  const b = mk(tb.nodes[1]!);
  return { a, b, san: tb.sanDir, done: async () => { await a.transport.close(); await b.transport.close(); await testbedDown(tbDir); } };
}

async function main(): Promise<void> {
  const { a, b, san, done } = await nodes();
  const started: Array<[QemuDriver, string]> = [];
  try {
    console.log(`hypervisor benchmark: QemuDriver, TCG, ${useTestbed ? 'two testbed nodes over SSH' : 'two local nodes (LocalTransport)'}, guests 1 vCPU / 128 MiB`);
    console.log(`guest: ${g.kernelVersion}, ${g.image}`);
    // The best of two bare boots: the machine is shared, one sample can be far off.
    const bare = Math.min(await bareBoot(san, 'bare-0'), await bareBoot(san, 'bare-1'));
    console.log(`baseline  bare qemu-system-x86_64, same guest, READY after ${s(bare)} (best of 2)`);

    for (let n = 1; n <= maxGuests; n *= 2) {
      const specs = Array.from({ length: n }, (_, i) => specFor(`boot${n}-${i}`, san, i));
      const t0 = Date.now();
      const times = await Promise.all(specs.map(async (sp) => {
        await a.create(sp);
        started.push([a, sp.name]);
        await a.waitForConsole(sp.name, READY, 600_000);
        return Date.now() - t0;
      }));
      console.log(`boot-to-READY  ${String(n).padStart(2)} together: slowest ${s(Math.max(...times))}, mean ${s(times.reduce((x, y) => x + y, 0) / n)}  (baseline 1 bare QEMU: ${s(bare)}; x${(Math.max(...times) / bare).toFixed(2)})`);
      await Promise.all(specs.map((sp) => a.destroy(sp.name)));
    }

    // Floor of any migration's preparation: QEMU itself starting as a migration target (the same
    // argv our target gets, `-incoming defer -daemonize`), started directly, no driver, no Transport.
    const floor = qemuTargetStart(san);
    console.log(`baseline  bare QEMU start as a migration target (same argv, -incoming defer): median ${floor} ms of 5`);

    // The migrated guests hold a working set (random data in their tmpfs), as guests doing work
    // do; an idle fresh guest migrates mostly zero pages. Our overhead is per migration (a target
    // QEMU process starts, the source's files go); QEMU's total grows with the memory in use, and
    // with a busy guest's dirty pages, which must be sent again.
    const verdicts: string[] = [];
    for (const row of MIGRATION_ROWS) {
      const name = `mig-${row.memoryMiB}-${row.busyMiB}`;
      const busy = row.busyMiB ? `(while true; do dd if=/dev/urandom of=/run/hot bs=1M count=${row.busyMiB} conv=notrunc 2>/dev/null; done) &\n` : '';
      const firstboot = `dd if=/dev/urandom of=/run/working-set bs=1M count=${row.workMiB} 2>/dev/null\n${busy}echo WORKING-SET-READY > /dev/console\n`;
      const sp = { ...specFor(name, san, 0, firstboot), memoryMiB: row.memoryMiB };
      await a.create(sp);
      started.push([a, sp.name], [b, sp.name]);
      await a.waitForConsole(sp.name, /WORKING-SET-READY/, 600_000);
      console.log(`guest ${row.memoryMiB} MiB, ${row.workMiB} MiB working set${row.busyMiB ? `, rewriting ${row.busyMiB} MiB without pause` : ', idle'} (${row.label}):`);

      const file = join(san, name, 'state.bin');
      const ts = Date.now();
      const sus = await a.suspend(sp.name, file);
      const susMs = Date.now() - ts;
      const t1 = Date.now();
      execFileSync('cp', [file, `${file}.copy`]);
      const cpMs = Date.now() - t1;
      rmSync(`${file}.copy`);
      const t2 = Date.now();
      await b.resume(sp, file);
      const resMs = Date.now() - t2;
      console.log(`  suspend ${s(susMs)} (state written in ${s(sus.durationMs)}, ${(sus.bytes / 2 ** 20).toFixed(1)} MiB); resume on the other node ${s(resMs)}  (baseline: cp of the state file ${s(cpMs)})`);

      // Each round: one migration as the migration controller runs it (prepareMigration while the
      // Migration is Pending, then run(): our end to end counts from run(), the Running record), and
      // one by migrate() in one call (the target's start on the clock), alternating so that both
      // see the same machine, in the pattern P M M P, so that each goes both ways equally (QEMU's
      // total differs by direction here: node-b -> node-a is often slower).
      type Row = { down: number; total: number; e2e: number; prepared: number };
      const rows: Row[] = [];
      const whole: Row[] = [];
      let from = b;
      let to = a;
      for (let i = 0; i < 2 * migrations; i++) {
        const prepared = i % 4 === 0 || i % 4 === 3;
        let r;
        if (prepared) {
          const prep = await from.prepareMigration(sp.name, to, { downtimeLimitMs: 300 });
          r = await prep.run();
        } else {
          r = await from.migrate(sp.name, to, { downtimeLimitMs: 300 });
        }
        (prepared ? rows : whole).push({ down: r.downtimeMs, total: r.totalMs, e2e: r.endToEndMs, prepared: r.preparedMs ?? 0 });
        const ph = r.phasesMs;
        const where = ph ? `prepare ${ph.prepare}, transfer ${ph.transfer}, switchover ${ph.switchover}, cleanup ${ph.cleanup}` : 'no phases';
        const how = prepared ? `prepared (target started beforehand in ${r.preparedMs} ms, off the clock), then run` : 'migrate() in one call';
        console.log(`  migration ${i + 1} ${from.node} -> ${to.node}, ${how}: ${(r.transferredBytes / 2 ** 20).toFixed(0)} MiB, QEMU downtime ${r.downtimeMs} ms, QEMU total ${r.totalMs} ms, ours end-to-end ${r.endToEndMs} ms (${where}), ratio ${(r.endToEndMs / r.totalMs).toFixed(2)}`);
        [from, to] = [to, from];
      }
      const ratio = median(rows.map((r) => r.e2e / r.total));
      const over = median(rows.map((r) => r.e2e - r.total));
      const verdict = ratio <= 1.5 ? 'met' : 'NOT met';
      console.log(`  migration median, prepared: downtime ${median(rows.map((r) => r.down))} ms, QEMU total ${median(rows.map((r) => r.total))} ms (baseline), ours ${median(rows.map((r) => r.e2e))} ms from run(), ratio ${ratio.toFixed(2)} (target <= 1.5: ${verdict}); our time beyond QEMU's total ${over} ms; the preparation before the clock ${median(rows.map((r) => r.prepared))} ms (a bare QEMU target start: ${floor} ms)`);
      const wRatio = median(whole.map((r) => r.e2e / r.total));
      console.log(`  migration median, migrate() in one call: QEMU total ${median(whole.map((r) => r.total))} ms, ours ${median(whole.map((r) => r.e2e))} ms, ratio ${wRatio.toFixed(2)}; our time beyond QEMU's total ${median(whole.map((r) => r.e2e - r.total))} ms`);
      verdicts.push(`${row.memoryMiB} MiB ${row.busyMiB ? 'busy' : 'idle'}: ratio ${ratio.toFixed(2)} ${verdict} (migrate() in one call: ${wRatio.toFixed(2)})`);
      await from.destroy(sp.name);
    }
    console.log(`migration ratio per guest: ${verdicts.join('; ')}`);
  } finally {
    for (const [d, name] of started) await d.destroy(name).catch(() => undefined);
    await done();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
