// Hypervisor benchmark on Xen (hack/bench-hypervisor --xen): XenDriver on two full testbed nodes
// (QEMU TCG machines booting Xen 4.17 with the Debian dom0), the reference guest as a PVH domU
// (the driver's choice where Xen has HAP, as on these nodes; 1 vCPU, 128 MiB, raw disks on the
// shared directory), each figure beside a baseline measured in the same run:
// - boot to READY (xl create until the guest's READY line in xenconsoled's log), against the same
//   guest booting under a bare qemu-system-x86_64 (TCG) on this machine;
// - suspend (xl save on the node's disk, then moved to the shared directory) and resume on the other
//   node (xl restore), against copying a file of the state's size into the shared directory on the
//   same node, and with xl's own save time (what `xl save` took, inside our suspend);
// - live migration (round 1, back to the first node; xl migrate over our pinned SSH): downtime
//   (xl prints none: libxl's suspend request to the target's "Domain started", as the lines reach
//   us), xl migrate's time and our end to end, against the suspend + resume of the same guest in the
//   same round (the cold way to move it). A failure prints its reason, no figure is invented.
// Xen's targets are printed as PASS/FAIL with the figure: downtime < 300 ms, end to end <= 2x
// xl migrate's own time. Then QEMU beside Xen on the same two nodes in the same run
// (hypervisor-xen-qemu.ts): the runtime's QemuDriver over the same SSH transports runs the same
// guest (1 vCPU, 128 MiB, idle, the same raw disks) inside dom0, under TCG inside the node's TCG
// (dom0 has no KVM): boot to READY, suspend and resume on the other node, a live migration (QEMU's
// own downtime and total, our end to end); a table puts each figure beside Xen's.
//
// usage: hack/bench-hypervisor --xen [--rounds N] [--qemu-boot-timeout S]

import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainSpec, MigrationResult } from '../../drivers/hypervisor/types.js';
import { XenDriver } from '../../drivers/hypervisor/xen-driver.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk } from '../../drivers/transport/types.js';
import { guestEnv, makeNodeDisks, referenceGuest } from '../../test/hypervisor/node-disks.js';
import { testbedDown, testbedUp, type TestbedNode } from '../lib/testbed.js';
import { bareQemuBoot } from './bare-qemu-boot.js';
import { qemuBesideXen } from './hypervisor-xen-qemu.js';

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf('--rounds') + 1] ?? 2) || 2;
/** The QEMU guest's limit from create to READY (TCG inside TCG), seconds. */
const qemuBootS = args.includes('--qemu-boot-timeout') ? Number(args[args.indexOf('--qemu-boot-timeout') + 1]) || 1800 : 1800;
const READY = /VIRTUALINUX-READY/;
const RUN_ROOT = '/var/lib/virtualinux/xen';
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'vc-bench-xen-'));
const g = referenceGuest();

function specFor(name: string, san: string, boot: { kernel: string; initrd: string }, i: number, rootFormat: 'raw' | 'qcow2' = 'raw'): DomainSpec {
  const disks = makeNodeDisks(join(san, name), guestEnv(name, `198.19.7.${10 + i}`), '', rootFormat);
  return {
    name: `bench.${name}`,
    vcpus: 1,
    memoryMiB: 128,
    boot: { kernel: boot.kernel, initrd: boot.initrd, cmdline: g.cmdline },
    disks: { root: { path: disks.root, format: rootFormat }, swap: { path: disks.swap, format: 'raw' }, config: { path: disks.config, format: 'raw', readOnly: true } },
  };
}

async function waitReady(d: XenDriver, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!READY.test((await d.readConsole(name)).text)) {
    if (Date.now() > deadline) throw new Error(`${d.node}: ${name} printed no READY line in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Xen's targets (issue 16): downtime < 300 ms; end to end <= 2x the hypervisor's own migration time. */
function targets(r: MigrationResult, own: string): string {
  const down = r.downtimeMs < 0 ? 'FAIL (unknown)' : `${r.downtimeMs < 300 ? 'PASS' : 'FAIL'} (${s(r.downtimeMs)})`;
  const ratio = r.endToEndMs / r.totalMs;
  return `downtime < 300 ms: ${down}; end to end <= 2x ${own}: ${ratio <= 2 ? 'PASS' : 'FAIL'} (${ratio.toFixed(2)}x: ${s(r.endToEndMs)} / ${s(r.totalMs)})`;
}

async function main(): Promise<void> {
  const tbDir = join(dir, 'tb');
  const t0 = Date.now();
  const tb = await testbedUp({ nodes: 2, dir: tbDir, full: { bootTimeoutMs: 600_000 } });
  const mk = (n: TestbedNode): XenDriver =>
    new XenDriver({
      transport: new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey, connectTimeoutMs: 120_000, keepaliveIntervalMs: 40_000 }),
      runRoot: RUN_ROOT,
      migrationAddress: n.address,
    });
  const a = mk(tb.nodes[0]!);
  const b = mk(tb.nodes[1]!);
  const names: string[] = [];
  try {
    let xenMig: MigrationResult | Error | undefined;
    console.log(`hypervisor benchmark: XenDriver on two full testbed nodes (Xen 4.17, Debian dom0, QEMU TCG; up in ${s(Date.now() - t0)}), ${(await a.guestType()).toUpperCase()} domU 1 vCPU / 128 MiB`);
    const bootDir = join(tb.sanDir, 'boot');
    mkdirSync(bootDir, { recursive: true });
    copyFileSync(g.kernel, join(bootDir, 'vmlinux'));
    copyFileSync(g.initrd, join(bootDir, 'initrd.img'));
    const boot = { kernel: join(bootDir, 'vmlinux'), initrd: join(bootDir, 'initrd.img') };

    const bare = await bareQemuBoot(specFor('bare', tb.sanDir, { kernel: g.kernel, initrd: g.initrd }, 0, 'qcow2'), 300_000);
    console.log(`baseline  bare qemu-system-x86_64 (TCG) on this machine, same guest: READY after ${s(bare)}`);

    const rows: Array<{ boot: number; suspend: number; save: number; bytes: number; cp: number; resume: number }> = [];
    for (let i = 0; i < rounds; i++) {
      const sp = specFor(`xen-${i}`, tb.sanDir, boot, i);
      names.push(sp.name);
      const tb0 = Date.now();
      await a.create(sp);
      await waitReady(a, sp.name, 600_000);
      const bootMs = Date.now() - tb0;
      const file = join(tb.sanDir, `xen-${i}`, 'state.bin');
      const ts = Date.now();
      const sus = await a.suspend(sp.name, file);
      const susMs = Date.now() - ts;
      // baseline: the same bytes copied from the node's disk into the shared directory, on that node
      const tc = Date.now();
      await execOk(a.transport, ['sh', '-c', 'head -c "$1" /dev/zero > /var/lib/xen/bench.copy && cp /var/lib/xen/bench.copy "$2" && rm -f /var/lib/xen/bench.copy "$2"', 'sh', String(sus.bytes), `${file}.copy`], { timeoutMs: 600_000 });
      const cpMs = Date.now() - tc;
      const tr = Date.now();
      await b.resume(sp, file);
      const resMs = Date.now() - tr;
      rows.push({ boot: bootMs, suspend: susMs, save: sus.durationMs, bytes: sus.bytes, cp: cpMs, resume: resMs });
      console.log(`Xen round ${i + 1}: boot to READY ${s(bootMs)} (bare QEMU ${s(bare)}, x${(bootMs / bare).toFixed(2)}); suspend ${s(susMs)} (xl save ${s(sus.durationMs)}, ${(sus.bytes / 2 ** 20).toFixed(1)} MiB; baseline: writing and copying that many bytes into the shared directory on the node ${s(cpMs)}); resume on the other node ${s(resMs)}`);
      if (i === 0) {
        const tm = Date.now();
        const r = await b.migrate(sp.name, a).catch((e: Error) => e);
        xenMig = r;
        if (r instanceof Error) {
          console.log(`Xen live migration ${b.node} -> ${a.node}: FAILED after ${s(Date.now() - tm)} (no downtime or total to report): ${r.message.split('; xl said')[0]}`);
        } else {
          const ph = r.phasesMs!;
          console.log(`Xen live migration ${b.node} -> ${a.node}: downtime ${r.downtimeMs < 0 ? 'unknown (xl printed no suspend/start line)' : s(r.downtimeMs)}, xl migrate ${s(r.totalMs)}, end to end ${s(r.endToEndMs)} (preparation: ssh key and host key, scripts, the target's loop devices ${s(ph.prepare)}, clean-up ${s(ph.cleanup)}); baseline: suspend + resume of this guest above ${s(susMs + resMs)}`);
          console.log(`  Xen's targets: ${targets(r, 'xl migrate')}`);
          // where the downtime went: xl's lines from the suspend request to the target's start, as they reached us
          const tl = b.lastMigrationLines?.switchoverTimeline(/xc: detail: /) ?? [];
          // the lines around each gap of 200 ms or more (and the first and last): where the time went
          const shown = tl.filter((x, i) => i === 0 || i === tl.length - 1 || x.ms - tl[i - 1]!.ms >= 200 || (tl[i + 1]?.ms ?? x.ms) - x.ms >= 200);
          console.log(`  xl -vvv from the suspend request to the start on ${a.node}: ${tl.length} lines, those around each gap of 200 ms or more (ms after the request, as they reached us):\n${shown.map((x) => `    +${x.ms} ${x.line.slice(0, 200)}`).join('\n')}`);
          // back with a paused switchover (xl migrate -p, a hook, xl unpause: what a SAN volume's
          // handover needs): the hook reads the domain's state on the target while it runs
          const tp = Date.now();
          let seen = 'not called';
          const p = await a.migrate(sp.name, b, { beforeResume: async () => { seen = (await b.get(sp.name))?.state ?? 'absent'; } }).catch((e: Error) => e);
          if (p instanceof Error) console.log(`Xen live migration ${a.node} -> ${b.node} with a paused switchover: FAILED after ${s(Date.now() - tp)}: ${p.message.split('; xl said')[0]}`);
          else {
            const ready = await b.get(sp.name);
            console.log(`Xen live migration ${a.node} -> ${b.node} with a paused switchover (xl migrate -p, hook, xl unpause): downtime ${p.downtimeMs < 0 ? 'unknown' : s(p.downtimeMs)}, xl migrate ${s(p.totalMs)}, end to end ${s(p.endToEndMs)}; the domain on ${b.node} was ${seen} during the hook, ${ready?.state ?? 'absent'} after`);
          }
        }
      }
      await b.destroy(sp.name);
      await a.destroy(sp.name);
    }
    const xen = {
      boot: median(rows.map((r) => r.boot)), suspend: median(rows.map((r) => r.suspend)), save: median(rows.map((r) => r.save)),
      bytes: median(rows.map((r) => r.bytes)), resume: median(rows.map((r) => r.resume)),
    };
    console.log(`Xen median of ${rounds}: boot to READY ${s(xen.boot)} (bare QEMU ${s(bare)}), suspend ${s(xen.suspend)} (xl save ${s(xen.save)}), resume ${s(xen.resume)}, state-size copy baseline ${s(median(rows.map((r) => r.cp)))}`);

    // QEMU on the same two nodes, same guest, same disks' kind, after Xen's rounds (one round)
    const qsp = specFor('qemu-0', tb.sanDir, boot, rounds);
    const q = await qemuBesideXen({ transport: a.transport, address: tb.nodes[0]!.address }, { transport: b.transport, address: tb.nodes[1]!.address }, qsp, { bootMs: qemuBootS * 1000, migrationMs: 600_000 });
    const qm = q.migration;
    if (qm) console.log(`  Xen's targets applied to QEMU (TCG inside TCG), for comparison: ${targets(qm, "QEMU's total")}`);
    const cell = (ms: number | undefined): string => (ms === undefined ? (q.failed ? 'not measured' : '-') : s(ms));
    const xm = xenMig instanceof Error || !xenMig ? undefined : xenMig;
    const tableRows: Array<[string, string, string]> = [
      ['boot to READY', s(xen.boot), cell(q.bootMs)],
      ['suspend (state to the shared directory)', `${s(xen.suspend)} (xl save ${s(xen.save)})`, q.suspendMs === undefined ? cell(undefined) : `${s(q.suspendMs)} (QEMU wrote it in ${s(q.stateWrittenMs!)})`],
      ['state size', `${(xen.bytes / 2 ** 20).toFixed(1)} MiB`, q.stateBytes === undefined ? cell(undefined) : `${(q.stateBytes / 2 ** 20).toFixed(1)} MiB`],
      ['resume on the other node', s(xen.resume), cell(q.resumeMs)],
      ['live migration downtime', xm ? (xm.downtimeMs < 0 ? 'unknown' : `${s(xm.downtimeMs)} (libxl's lines)`) : 'failed', qm ? `${s(qm.downtimeMs)} (QEMU's own)` : cell(undefined)],
      ["live migration, the hypervisor's total", xm ? `${s(xm.totalMs)} (xl migrate)` : 'failed', qm ? `${s(qm.totalMs)} (QEMU's own)` : cell(undefined)],
      ['live migration, ours end to end', xm ? s(xm.endToEndMs) : 'failed', qm ? s(qm.endToEndMs) : cell(undefined)],
    ];
    const w0 = Math.max(...tableRows.map((r) => r[0].length));
    const w1 = Math.max(13, ...tableRows.map((r) => r[1].length));
    console.log(`side by side, same two nodes, same run, 1 vCPU / 128 MiB idle (Xen: median of ${rounds}, migration of round 1; QEMU: one round, TCG inside TCG):`);
    console.log(`  ${''.padEnd(w0)}  ${'Xen domU (xl)'.padEnd(w1)}  QEMU guest in dom0 (QemuDriver, TCG inside TCG)`);
    for (const [k, x, y] of tableRows) console.log(`  ${k.padEnd(w0)}  ${x.padEnd(w1)}  ${y}`);
    if (q.failed) console.log(`  QEMU's ${q.failed.step} failed: ${q.failed.message}`);
  } finally {
    for (const n of names) for (const d of [a, b]) await d.destroy(n).catch(() => undefined);
    await a.transport.close();
    await b.transport.close();
    await testbedDown(tbDir).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

// exit when done: after a full run the process stayed alive with three sockets open (not found
// which: the testbed and both transports were already down)
main().then(
  () => process.exit(process.exitCode ?? 0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
