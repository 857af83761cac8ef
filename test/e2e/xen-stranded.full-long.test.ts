// A Xen live migration stranded past xl's point of no return while no manager watched, settled by
// the next manager (issue 16 item 3; the migration plan's `settle`, XenDriver.settleMigration).
// On two full Xen nodes: a VC of 2 VMs (one per node), the target's migration forced command
// replaced by a receiver that SIGKILLs its `xl migrate-receive` once the whole domain has arrived
// (test/hypervisor/stranding-receiver.ts, `keep`), the manager SIGKILLed while xl transfers. xl
// outlives the manager, renames the source's copy `<name>--migratedaway` at its point of no return
// and fails in its final handshake; the target's complete copy waits paused as `<name>--incoming`.
// The next manager must find that (the source lists the copy paused, detail migratedaway, no xl
// sending it) and run the target's copy: exactly one copy at every sample, the same boot going on,
// the Migration Succeeded saying what happened. The driver alone is checked in xen-driver.full;
// this is the controller's path with a real manager, store and nodes. Long (a TCG Xen migration of
// 128 MiB takes minutes), so not in `npm test`: `npx mocha test/e2e/xen-stranded.full-long.test.ts`.
import assert from 'node:assert/strict';
import { loadavg } from 'node:os';
import type { ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { Migration, VirtualNode } from '../../api/types.js';
import { execOk } from '../../drivers/transport/types.js';
import { XEN_MIGRATE_RECEIVE_SCRIPT } from '../../drivers/hypervisor/xen-scripts.js';
import { DEFAULT_RUN_ROOT } from '../../reconcilers/runtime/hosts.js';
import { waitFor } from '../controllers/helpers.js';
import { strandingReceiver } from '../hypervisor/stranding-receiver.js';
import { fullXenSuite, vmConsole } from './full-dom0.js';

const VC = 'strand';
const RECEIVE_SCRIPT = `${DEFAULT_RUN_ROOT}/vl-migrate-receive`;

/** Every 3 s `ROUND <vm> <n>`: a guest that goes on counts on; one booted again starts at 1 after a READY line. */
const ROUNDS = `(n=0; while true; do n=$((n + 1)); echo "ROUND $VC_NODE_NAME $n"; sleep 3; done) > /dev/console 2>&1 &`;

const vcYaml = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${VC}, namespace: default}
spec:
  nodes: 2
  template: busybox
  hypervisor: xen
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 32}
  network: {subnet: 10.213.0.0/24}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
  firstBoot:
    script: |
      ${ROUNDS}
`;

const stamp = () => `${new Date().toISOString().slice(11, 19)} UTC, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`;

describe('a Xen migration stranded past xl\'s point of no return under a killed manager (two full Xen nodes)', function () {
  this.timeout(40 * 60_000);
  const suite = fullXenSuite({
    sanMiB: 2048,
    onFailure: async () => {
      for (const name of [`${VC}-0`, `${VC}-1`]) console.log(`console of ${name} (last 20 lines):\n${(await logs(name).catch((e: Error) => e.message)).trimEnd().split('\n').slice(-20).join('\n')}`);
      for (const node of dom0.keys()) console.log(`${node}: ${await sh(node, 'xl list; ps -eo pid,args | grep -E "xl (-v+ )?migrate" | grep -v grep; true').catch((e: Error) => e.message)}`);
    },
  });
  let h: ClusterHarness;
  const dom0 = suite.dom0;
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const logs = (name: string): Promise<string> => vmConsole(h, name);
  const sh = (node: string, script: string, ...args: string[]) => execOk(dom0.get(node)!, ['sh', '-c', script, 'sh', ...args], { timeoutMs: 120_000 });
  /** The target's migration forced command (written as a new file: made executable again). */
  const installReceiver = async (node: string, script: string): Promise<void> => {
    await dom0.get(node)!.writeFile(RECEIVE_SCRIPT, script);
    await sh(node, 'chmod 755 "$1"', RECEIVE_SCRIPT);
  };
  const rounds = (text: string, vm: string): number[] => [...text.matchAll(new RegExp(`ROUND ${vm} (\\d+)`, 'g'))].map((x) => Number(x[1]));

  before(() => {
    h = suite.h;
    console.log(`      testbed and manager up, ${stamp()}`);
  });

  it('the next manager runs the target\'s complete copy: one copy at every sample, the same boot going on, the Migration Succeeded saying what happened', async () => {
    const a = await h.vcctl(['apply', '-f', '-'], vcYaml);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', `vc/${VC}`, '--for=condition=Ready', '--timeout=25m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', `vc/${VC}`])).stdout);
    const name = `${VC}-0`;
    const domain = `default.${name}`;
    /** Whether `node` runs the domain under its own name (xl list: running or blocked, not paused). */
    const running = async (node: string) => (await sh(node, 'xl list')).split('\n').some((l) => l.split(/\s+/)[0] === domain && /^\S+\s+\d+\s+\d+\s+\d+\s+[-rb]{6}\s/.test(l));
    const source = (await vn(name)).status!.host!;
    const target = h.testbed.nodes.map((n) => n.name).find((n) => n !== source)!;
    // the target runs the other VM: its driver installed its scripts already, and will not again
    assert.equal((await vn(`${VC}-1`)).status?.host, target);
    const lastRound = await waitFor(`${name} counting rounds`, async () => rounds(await logs(name), name).at(-1), 300_000, 3000);
    await installReceiver(target, strandingReceiver('keep', domain));
    try {
      const created = await h.vcctl(['migrate', `vn/${name}`, '--to', target]);
      assert.equal(created.code, 0, created.stderr);
      const ref = { kind: 'Migration', namespace: 'default', name: /^migration\/(\S+) created/.exec(created.stdout)![1]! };
      await waitFor('the transfer under way', async () => (await h.store.get<Migration>(ref)).status?.phase === 'Running'
        && /^\S+--incoming\s/m.test(await sh(target, 'xl list')), 900_000, 1000);
      console.log(`      transfer under way, manager SIGKILLed: ${stamp()}`);
      const killedAt = Date.now();
      await h.restartManager('SIGKILL');
      const samples: string[][] = [];
      let stranded = false;
      const end = await waitFor('the migration to end', async () => {
        const onTarget = await running(target);
        const onSource = await running(source);
        samples.push([...(onSource ? [source] : []), ...(onTarget ? [target] : [])]);
        stranded ||= /--migratedaway\s/.test(await sh(source, 'xl list'));
        const m = await h.store.get<Migration>(ref);
        return m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed' ? m : undefined;
      }, 1_500_000, 2000);
      console.log(`      ${end.status?.phase} ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill: ${end.status?.message}; samples: ${samples.map((x) => x.join('+') || '-').join(' ')}; ${stamp()}`);
      assert.ok(stranded, 'xl passed its point of no return (the source\'s copy was seen as --migratedaway)');
      assert.ok(samples.every((x) => x.length <= 1), `two copies running at once: ${JSON.stringify(samples)}`);
      assert.equal(end.status?.phase, 'Succeeded', end.status?.message);
      assert.match(end.status!.message!, new RegExp(`^moved to ${target}: xl migrate ended past its point of no return .*${target} had the whole domain .*: it runs there now, the copy on ${source} was destroyed \\(figures not known\\)$`));
    } finally {
      await installReceiver(target, XEN_MIGRATE_RECEIVE_SCRIPT);
    }
    await waitFor(`${name} bound and running on ${target} only`, async () => {
      const v = await vn(name);
      return v.spec?.physicalNode === target && v.status?.host === target && v.status.phase === 'Running' && !(await running(source)) && (await running(target)) ? true : undefined;
    }, 300_000, 2000);
    for (const node of [source, target]) assert.doesNotMatch(await sh(node, 'xl list'), /--(migratedaway|incoming)\b/, node);
    // the same boot goes on, memory kept: its rounds count on from before, no READY line again
    const text = await waitFor(`${name} counting on`, async () => {
      const t = await logs(name);
      return (rounds(t, name).at(-1) ?? 0) > lastRound ? t : undefined;
    }, 300_000, 3000);
    assert.doesNotMatch(text, /VIRTUALINUX-READY/, 'the guest went on, not booted again');
    assert.ok(rounds(text, name)[0]! > 1, `rounds went on from ${lastRound}: ${rounds(text, name).slice(0, 3).join(',')}`);
  });
});
