// The hypervisor driver conformance suite: one guest's whole life across two nodes, run for real.
// The guest's first-boot script starts a ticker printing `TICK <n>` on the console every second,
// so a resumed or migrated guest is proven to be the same running guest (the count goes on) and
// not a fresh boot (it would restart at 1 after a second READY marker).
//
// Any HypervisorDriver runs it: the caller gives a factory for a pair of nodes (`setup`) and says
// which behaviours beyond the contract in drivers/hypervisor/types.ts its hypervisor has
// (ConformanceCapabilities). A capability the driver lacks turns the tests that need it into
// pending tests naming the reason (shown in mocha's output, never passed silently).

import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { MigrationCancelledError, MigrationFailedError, type DomainSpec, type HypervisorDriver, type PreparedMigration } from '../../drivers/hypervisor/types.js';
import { guestEnv, makeNodeDisks, referenceGuest } from './node-disks.js';

export interface NodePair<D extends HypervisorDriver = HypervisorDriver> {
  a: D;
  b: D;
  /** A directory both nodes see at the same path (the SAN). */
  san: string;
  /** Whether a process id (DomainInfo.pid: QEMU's process, Xen's domain id) is alive on that node. */
  alive(node: D, pid: number): Promise<boolean>;
  /** Where the nodes find the guest's kernel and initrd; default the reference guest's own paths (nodes sharing this machine's files). */
  boot?: { kernel: string; initrd: string };
  /** The root disk's format: qcow2 (an overlay on the template, default) or raw (a copy of it). */
  rootFormat?: 'qcow2' | 'raw';
  /** Ends what `alive` checks, for the clean-up after the tests; default `kill -KILL <pid>` on the node. */
  kill?(node: D, pid: number): Promise<void>;
  teardown(): Promise<void>;
}

/** What the suite checks beyond the HypervisorDriver contract; each says which hypervisor has it. */
export interface ConformanceCapabilities<D extends HypervisorDriver = HypervisorDriver> {
  /**
   * Processes on the node, other than the hypervisor's own, still working on the domain (e.g. a
   * migration's armed clean-up); checked to be none after every migration. QEMU: pgrep on the run directory.
   */
  helpersLeft(d: D, name: string): Promise<string[]>;
  /**
   * Migration honours maxBandwidthBytesPerSec and reports progress (onProgress with transferred
   * bytes), so the suite can act midway (cancel, kill the target). QEMU yes; xl migrate has neither.
   */
  throttledMigration: boolean;
  /**
   * The hypervisor reports migration downtime and total (downtimeMs > 0) and the driver times its
   * phases (phasesMs). QEMU yes; xl reports no downtime (-1).
   */
  migrationFigures: boolean;
  /**
   * Why this hypervisor cannot live-migrate on these nodes, when it cannot: the live-migration tests
   * are then pending with this reason, and the domain's life goes on without them (suspend on the
   * node it booted on, resume on the other). Xen on the full testbed nodes: Debian's Xen has no
   * shadow paging, which PV log-dirty needs.
   */
  noLiveMigration?: string;
  /**
   * How long a first boot may take to print READY (default 90 s). A PV domU in a TCG dom0 boots in
   * about 40 s on a quiet machine and took over 100 s with other QEMU machines on the 2 cores.
   */
  readyTimeoutMs?: number;
  /**
   * How long a case of the domain's life (a live migration, a suspend) may take, when more than the
   * default 240 s: Xen under TCG copies a 128 MiB guest through ssh in minutes at load ~20.
   */
  caseTimeoutMs?: number;
  /**
   * The driver's prepareMigration starts a waiting incoming target (QEMU yes; Xen's prepares keys,
   * scripts and disks only), and this leaves
   * on `target` what a manager that died after preparing leaves there: `spec` waiting as an
   * incoming domain, no connection to it kept.
   */
  leaveIncoming?(target: D, spec: DomainSpec): Promise<void>;
}

const TICKER = `(i=0; while true; do i=$((i + 1)); echo "TICK $i" > /dev/console; sleep 1; done) &\n`;
const READY_TIMEOUT = 90_000;

function lastTick(text: string): number {
  const all = [...text.matchAll(/TICK (\d+)/g)];
  return all.length ? Number(all[all.length - 1]![1]) : 0;
}

async function waitTickAbove(d: HypervisorDriver, name: string, above: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = lastTick((await d.readConsole(name)).text);
    if (t > above) return t;
    if (Date.now() > deadline) throw new Error(`${d.node}: ${name} console shows no TICK above ${above} within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Waits for the console to match (the contract has readConsole only); returns the text. */
async function waitForConsole(d: HypervisorDriver, name: string, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { text } = await d.readConsole(name);
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${d.node}: ${name} console did not match ${pattern} within ${timeoutMs} ms`);
    await sleep(200);
  }
}

export function describeHypervisorConformance<D extends HypervisorDriver>(
  title: string,
  setup: () => Promise<NodePair<D>>,
  caps: ConformanceCapabilities<D>,
): void {
  /** A test needing a capability the driver lacks is registered pending, with the reason. */
  const itIf = (has: boolean, why: string, t: string, fn: () => Promise<void>): void => {
    if (has) it(t, fn);
    else it.skip(`${t} [not run: ${why}]`);
  };
  describe(title, function () {
    this.timeout(Math.max(240_000, caps.caseTimeoutMs ?? 0));
    let pair: NodePair<D>;
    let spec: DomainSpec;
    const name = 'test.conf-0';
    const pids: Array<[D, number]> = [];
    const helpersLeft = (d: D): Promise<string[]> => caps.helpersLeft(d, name);

    const remember = async (d: D): Promise<number> => {
      const info = await d.get(name);
      assert.ok(info?.pid, `${d.node}: ${name} has a process`);
      pids.push([d, info.pid]);
      return info.pid;
    };

    before(async function () {
      this.timeout(300_000);
      pair = await setup();
      const g = referenceGuest();
      const rootFormat = pair.rootFormat ?? 'qcow2';
      const disks = makeNodeDisks(`${pair.san}/conf-0`, guestEnv('conf-0', '198.19.7.2'), TICKER, rootFormat);
      spec = {
        name,
        vcpus: 1,
        memoryMiB: 128,
        boot: { kernel: pair.boot?.kernel ?? g.kernel, initrd: pair.boot?.initrd ?? g.initrd, cmdline: g.cmdline },
        disks: {
          root: { path: disks.root, format: rootFormat },
          swap: { path: disks.swap, format: 'raw' },
          config: { path: disks.config, format: 'raw', readOnly: true },
        },
      };
    });

    after(async function () {
      this.timeout(180_000);
      if (!pair) return;
      for (const d of [pair.a, pair.b]) await d.destroy(name).catch(() => undefined);
      for (const [d, pid] of pids) {
        if (!(await pair.alive(d, pid).catch(() => false))) continue;
        if (pair.kill) await pair.kill(d, pid);
        else await d.transport.exec(['kill', '-KILL', String(pid)]);
      }
      await pair.teardown();
    });

    it('boots to the READY marker and lists the domain as running; create again is a no-op', async function () {
      this.timeout((caps.readyTimeoutMs ?? READY_TIMEOUT) + 180_000); // the create itself, then the boot
      const info = await pair.a.create(spec);
      assert.equal(info.name, name);
      await waitForConsole(pair.a, name, /VIRTUALINUX-READY conf-0 198\.19\.7\.2/, caps.readyTimeoutMs ?? READY_TIMEOUT);
      const pid = await remember(pair.a);
      const again = await pair.a.create(spec);
      assert.equal(again.pid, pid, 'create of a running domain keeps the same process');
      const listed = await pair.a.list();
      assert.deepEqual(listed.map((d) => [d.name, d.state]), [[name, 'running']]);
      assert.deepEqual(await pair.b.list(), []);
      await waitTickAbove(pair.a, name, 0);
    });

    /** The node the domain runs on now (it moves with migration and suspend/resume). */
    let at: () => D = () => pair.a;
    const other = (d: D): D => (d === pair.a ? pair.b : pair.a);
    const live = caps.noLiveMigration === undefined;
    const noThrottle = caps.noLiveMigration ?? 'the driver has no migration bandwidth limit or progress';
    itIf(live && caps.throttledMigration, noThrottle, 'cancels a throttled migration: the domain runs only on the source', async () => {
      const before = lastTick((await pair.a.readConsole(name)).text);
      let targetPid: number | undefined;
      let cancelled = false;
      let cancelAnswer: boolean | undefined;
      const mig = pair.a.migrate(name, pair.b, {
        maxBandwidthBytesPerSec: 1024 * 1024,
        onProgress: (p) => {
          if (p.status === 'active' && p.transferredBytes > 2 * 1024 * 1024 && !cancelled) {
            cancelled = true;
            void (async () => {
              targetPid = (await pair.b.get(name))?.pid;
              cancelAnswer = await pair.a.cancelMigration(name);
            })();
          }
        },
      });
      await assert.rejects(mig, MigrationCancelledError);
      assert.equal(cancelAnswer, true, 'cancelMigration found the running migration');
      assert.ok(targetPid, 'the target had a QEMU while the migration ran');
      assert.equal(await pair.b.get(name), undefined, 'no domain left on the target');
      assert.equal(await pair.alive(pair.b, targetPid), false, 'no target process left');
      assert.equal((await pair.a.get(name))?.state, 'running');
      assert.equal(await pair.a.cancelMigration(name), false, 'nothing to cancel any more');
      assert.deepEqual(await helpersLeft(pair.a), [], 'no helper process left on the source');
      await waitTickAbove(pair.a, name, before);
    });

    itIf(live && caps.throttledMigration, noThrottle, 'a migration whose target dies midway leaves the source running and nothing on the target', async () => {
      let targetPid: number | undefined;
      let killed = false;
      const mig = pair.a.migrate(name, pair.b, {
        maxBandwidthBytesPerSec: 1024 * 1024,
        onProgress: (p) => {
          if (p.status === 'active' && p.transferredBytes > 2 * 1024 * 1024 && !killed) {
            killed = true;
            void (async () => {
              targetPid = (await pair.b.get(name))?.pid;
              if (targetPid) await pair.b.transport.exec(['kill', '-KILL', String(targetPid)]);
            })();
          }
        },
      });
      await assert.rejects(mig, (e: Error) => e instanceof MigrationFailedError && !(e instanceof MigrationCancelledError));
      assert.ok(targetPid, 'the target QEMU was found and killed');
      assert.equal(await pair.alive(pair.b, targetPid), false);
      assert.equal(await pair.b.get(name), undefined, 'no files left on the target');
      assert.equal((await pair.a.get(name))?.state, 'running');
      assert.deepEqual(await helpersLeft(pair.a), [], 'no helper process left on the source');
      const t = lastTick((await pair.a.readConsole(name)).text);
      await waitTickAbove(pair.a, name, t);
    });

    itIf(live, caps.noLiveMigration ?? '', 'live-migrates: the same guest runs only on the target, with QEMU downtime and total reported', async () => {
      const before = lastTick((await pair.a.readConsole(name)).text);
      const oldPid = (await pair.a.get(name))!.pid!;
      const r = await pair.a.migrate(name, pair.b, { downtimeLimitMs: 300 });
      assert.ok(r.totalMs > 0, JSON.stringify(r));
      if (caps.migrationFigures) assert.ok(r.downtimeMs > 0 && r.transferredBytes > 0, JSON.stringify(r));
      assert.ok(r.endToEndMs >= r.totalMs, 'our end to end time includes QEMU total time');
      assert.deepEqual(await pair.a.list(), [], 'nothing left on the source');
      assert.equal(await pair.alive(pair.a, oldPid), false, 'source process ended');
      assert.deepEqual(await helpersLeft(pair.a), [], 'no helper process left on the source');
      if (caps.migrationFigures) {
        const ph = r.phasesMs!;
        assert.equal(ph.prepare + ph.transfer + ph.switchover + ph.cleanup, r.endToEndMs, JSON.stringify(r));
        assert.ok(ph.transfer >= r.totalMs, `QEMU's total lies within our transfer phase: ${JSON.stringify(r)}`);
      }
      assert.equal((await pair.b.get(name))?.state, 'running');
      await remember(pair.b);
      const after = await waitTickAbove(pair.b, name, before);
      assert.ok(after > before, 'the ticker continues: same guest, not a reboot');
      assert.doesNotMatch((await pair.b.readConsole(name)).text, /VIRTUALINUX-READY/, 'no second boot on the target');
      at = () => pair.b;
    });

    const noPrepare = caps.noLiveMigration ?? 'no waiting incoming target to test: the driver\'s prepareMigration starts none (Xen prepares keys, scripts and disks only), or it has none';
    itIf(live && !!caps.leaveIncoming, noPrepare, 'a prepared migration: the target waits, the source runs on; abort leaves nothing; a dead manager\'s incoming target is replaced, and run() moves the guest', async () => {
      const from = at();
      const to = other(from);
      const prepare = from.prepareMigration!.bind(from);
      // A preparation neither run nor aborted (the test failed midway) is aborted, so that the
      // next tests find the source's monitor free.
      let pending: PreparedMigration | undefined;
      try {
        const p1 = pending = await prepare(name, to, { downtimeLimitMs: 300 });
        const waiting = await to.get(name);
        assert.equal(waiting?.state, 'incoming', 'the target waits for the state');
        assert.equal((await from.get(name))?.state, 'running', 'the source runs on untouched');
        await assert.rejects(prepare(name, to), /already migrating/);
        assert.equal((await to.get(name))?.pid, waiting.pid, 'a refused second preparation leaves the first target alone');
        const tick = lastTick((await from.readConsole(name)).text);
        pending = undefined;
        await p1.abort();
        assert.equal(await to.get(name), undefined, 'abort leaves nothing on the target');
        assert.equal(await pair.alive(to, waiting.pid!), false, 'no target process left');
        assert.deepEqual(await helpersLeft(from), [], 'no helper process left on the source');
        await waitTickAbove(from, name, tick);

        await caps.leaveIncoming!(to, spec);
        const stale = await to.get(name);
        assert.equal(stale?.state, 'incoming');
        const before = lastTick((await from.readConsole(name)).text);
        const p2 = pending = await prepare(name, to, { downtimeLimitMs: 300 });
        const fresh = (await to.get(name))?.pid;
        assert.notEqual(fresh, stale.pid, 'the stale incoming domain was replaced');
        assert.equal(await pair.alive(to, stale.pid!), false, `the stale incoming process ${stale.pid} is gone (the new one: ${fresh})`);
        pending = undefined;
        const r = await p2.run();
        assert.ok(r.preparedMs! > 0 && r.endToEndMs >= r.totalMs && r.totalMs > 0, JSON.stringify(r));
        assert.deepEqual(await from.list(), [], 'nothing left on the source');
        assert.deepEqual(await helpersLeft(from), [], 'no helper process left on the source');
        assert.equal((await to.get(name))?.state, 'running');
        at = () => to;
        await remember(to);
        assert.ok((await waitTickAbove(to, name, before)) > before, 'the same guest runs on');
      } finally {
        await pending?.abort().catch(() => undefined);
      }
    });

    it('suspends to disk on one node and resumes on the other', async () => {
      const from = at();
      const to = other(from);
      const file = `${pair.san}/conf-0/state.bin`;
      const before = lastTick((await from.readConsole(name)).text);
      const s = await from.suspend(name, file);
      assert.ok(s.bytes > 1024 * 1024, `state file has the guest's memory (${s.bytes} bytes)`);
      assert.equal(await from.get(name), undefined, 'suspended domain is gone from the node');
      const info = await to.resume(spec, file);
      assert.equal(info.state, 'running');
      at = () => to;
      await remember(to);
      assert.equal((await to.transport.exec(['test', '-e', file])).code, 1, 'state file removed after resume');
      const after = await waitTickAbove(to, name, before, 60_000);
      assert.ok(after > before);
      assert.ok(after < before + 30, 'the count continues from where it was, it did not restart');
      assert.doesNotMatch((await to.readConsole(name)).text, /VIRTUALINUX-READY/, 'no second boot after resume');
    });

    it('shuts down through ACPI, keeps the console; destroy removes it; destroy again is fine', async () => {
      const d = at();
      const r = await d.shutdown(name, { timeoutMs: 60_000 });
      assert.equal(r.clean, true, 'guest powered off by itself');
      assert.equal((await d.get(name))?.state, 'shutoff');
      // QEMU (ACPI) prints "Power down"; a Xen PV guest has no pm_power_off, so its poweroff is a
      // halt that Xen ends as a power-off (xl log: "shutdown reason code 0")
      assert.match((await d.readConsole(name)).text, /reboot: (Power down|System halted)/);
      await d.destroy(name);
      assert.equal(await d.get(name), undefined);
      await d.destroy(name);
      assert.deepEqual(await d.list(), []);
      assert.deepEqual(await d.readConsole(name), { text: '', nextOffset: 0 });
    });

    it('destroys a running domain at once', async () => {
      const d = other(at());
      await d.create(spec);
      const pid = await remember(d);
      await d.destroy(name);
      assert.equal(await pair.alive(d, pid), false);
      assert.equal(await d.get(name), undefined);
    });
  });
}
