// End to end on the testbed (issue 14): an NFS VC's shared storage outlives the orphan grace.
// The NFS server keeps its state under the node's run root (`<runRoot>/nfs/`), beside the QEMU
// domains' directories; it was listed as a domain named `nfs`, reported as an orphan and
// destroyed once the grace had passed, and every NFS VC lost its shared storage a minute after it
// started. Here vc-manager runs with a 3 s `--orphan-grace`, and a decoy orphan domain on every
// node shows that the collector did pass the grace while the NFS servers ran; the guests keep
// writing to and listing the share all along (the ticker of nfs-ticker.ts).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { EventObject, PhysicalNode, Volume } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { HypervisorError } from '../../drivers/hypervisor/types.js';
import { NfsServerDriver } from '../../drivers/nfs/nfs-server.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';
import { waitFor } from '../controllers/helpers.js';
import { nfsTickerVc, shareTicks } from './nfs-ticker.js';

const GRACE_S = 3;
const DECOY = 'zz.orphan-decoy'; // sorts after `nfs`: the collector's pass reaches nfs first

const VC = nfsTickerVc('keepnfs');

describe('NFS shared storage past the orphan grace, end to end on the testbed', function () {
  this.timeout(15 * 60_000);
  let h: ClusterHarness;
  let shared: string;
  const transports = new TransportCache();
  const nodes = async () => (await h.store.list<PhysicalNode>('PhysicalNode')).items;
  const runRootOf = (pn: PhysicalNode) => pn.spec!.runRoot!;
  const logs = async (vm: string) => (await h.vcctl(['logs', `vn/${vm}`])).stdout;
  const { advances } = shareTicks(() => shared);
  const orphanEvents = async () =>
    (await h.store.list<EventObject>('Event')).items.flatMap((e) => (e.spec && /^Orphan/.test(e.spec.reason) ? [e.spec] : []));

  before(async function () {
    this.timeout(10 * 60_000);
    h = await startClusterHarness({ nodes: 2, cores: 2, memoryMiB: 1024, managerArgs: ['--orphan-grace', String(GRACE_S)] });
  });
  after(async () => {
    await transports.closeAll();
    await h?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && h) {
      const r = await h.vcctl(['get', 'vc,vn,vol,pn', '-o', 'wide']);
      console.log(r.stdout, r.stderr, `manager log: ${h.managerLog}`);
      for (const e of await orphanEvents()) console.log(`event ${e.reason}: ${e.message}`);
      for (const vm of ['keepnfs-0', 'keepnfs-1']) console.log(`--- ${vm} console\n${(await logs(vm)).slice(-1500)}`);
    }
  });

  it('the guests write to and list the share from both nodes', async () => {
    const a = await h.vcctl(['apply', '-f', '-'], VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/keepnfs', '--for=condition=Ready', '--timeout=6m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/keepnfs'])).stdout);
    shared = (await h.store.get<Volume>({ kind: 'Volume', namespace: 'default', name: 'keepnfs-shared' })).status!.path!;
    for (const vm of ['keepnfs-0', 'keepnfs-1']) await advances(vm);
    const hosts = [...(await h.domains())].filter(([, ds]) => ds.some((d) => d.name.startsWith('default.keepnfs-')));
    assert.equal(hosts.length, 2, 'one VM per node: each node serves the share');
    for (const pn of await nodes()) assert.ok(existsSync(join(runRootOf(pn), 'nfs', 'ganesha.conf')), `${pn.metadata.name} serves NFS`);
  });

  it('outlives the orphan grace: nothing of the NFS server is taken for a domain, the share keeps working', async () => {
    // A real orphan on every node (a domain whose start failed: its files remain, no VirtualNode
    // wants it), created while the NFS servers run: once the collector destroyed it, it passed the
    // grace with the NFS state in place, and had reached `nfs` first in that pass.
    const drivers = new HypervisorDrivers(transports, 'tcg');
    for (const pn of await nodes()) {
      const d = drivers.get(pn);
      await assert.rejects(d.create({
        name: DECOY, vcpus: 1, memoryMiB: 64,
        boot: { kernel: join(runRootOf(pn), 'no-such-kernel'), cmdline: 'console=ttyS0' },
        disks: { root: { path: join(runRootOf(pn), 'no-such-disk.qcow2'), format: 'qcow2' } },
      }), HypervisorError);
      assert.ok((await d.list()).some((x) => x.name === DECOY), `the decoy is listed on ${pn.metadata.name}`);
      assert.ok(!(await d.list()).some((x) => x.name === 'nfs'), `nfs is not listed as a domain on ${pn.metadata.name}`);
    }
    const offsets = new Map<string, number>();
    for (const vm of ['keepnfs-0', 'keepnfs-1']) offsets.set(vm, (await logs(vm)).length);
    for (const pn of await nodes()) {
      await waitFor(`the orphan collector destroys the decoy on ${pn.metadata.name}`,
        async () => !existsSync(join(runRootOf(pn), DECOY)), 120_000, 500);
    }
    await waitFor('OrphanDestroyed events for the decoys', async () =>
      (await orphanEvents()).filter((e) => e.reason === 'OrphanDestroyed' && e.message.includes(DECOY)).length === 2, 60_000, 1000);

    // The guests go on writing and listing for longer than the network controller's resync (30 s),
    // which would have found the damage and reported it.
    await Promise.all(['keepnfs-0', 'keepnfs-1'].map((vm) => advances(vm, 35, 120_000)));
    for (const [vm, other] of [['keepnfs-0', 'keepnfs-1'], ['keepnfs-1', 'keepnfs-0']] as const) {
      const lines = (await logs(vm)).slice(offsets.get(vm)).split(/\r?\n/).filter((l) => l.includes('NFS-SEES '));
      assert.ok(lines.length >= 5, `${vm} listed the share since the decoys were made (${lines.length} times)`);
      assert.ok(lines.slice(-3).every((l) => l.includes(`tick-${other}`) && l.includes(`tick-${vm}`)), `${vm} sees both files: ${lines.slice(-3).join(' | ')}`);
    }

    const aboutNfs = (await orphanEvents()).filter((e) => /domain nfs\b/.test(e.message));
    assert.deepEqual(aboutNfs.map((e) => `${e.reason}: ${e.message}`), [], 'no orphan event names nfs');
    for (const pn of await nodes()) {
      const name = pn.metadata.name;
      const local = new LocalTransport({ host: name });
      const server = await new NfsServerDriver(local, { runRoot: runRootOf(pn) }).list().finally(() => local.close());
      assert.ok(server.pid !== undefined, `${name}: our nfs-ganesha runs (its pid file and config in place)`);
      assert.deepEqual(server.exports.map((e) => e.pseudo), ['/vc/default/keepnfs'], `${name} serves the share`);
      const cond = getCondition(pn.status?.conditions, 'NfsReady');
      assert.equal(cond?.status, 'True', `${name} NfsReady: ${cond?.reason}: ${cond?.message}`);
    }
  });
});
