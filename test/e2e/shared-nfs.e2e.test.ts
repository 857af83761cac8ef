// End to end on the testbed: a VC's shared storage over NFS (sharedStorage.filesystem: nfs). Each
// node hosting a VM of the VC serves the VC's shared directory with nfs-ganesha at the VC's gateway
// address; the guests mount it from there. Unlike the virtio-9p stand-in, nothing of it lives in
// QEMU, so the VMs can be live-migrated and suspended with the share mounted, and keep using it.
//
// Each guest runs the ticker of nfs-ticker.ts: it rewrites `tick-<its name>` in the share every
// second and prints what it sees there; the files are read here on the SAN (the exported directory).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { EventObject, Migration, PhysicalNode, VirtualNode, Volume } from '../../api/types.js';
import { nfsServerPaths } from '../../drivers/nfs/nfs-server.js';
import { DEFAULT_RUN_ROOT } from '../../reconcilers/runtime/hosts.js';
import { waitFor } from '../controllers/helpers.js';
import { GuestFailedError, guestHealth, nfsTickerVc, shareTicks } from './nfs-ticker.js';

const VC = nfsTickerVc('nfsduo');

describe('shared storage over NFS, end to end on the testbed', function () {
  this.timeout(15 * 60_000);
  let h: ClusterHarness;
  let shared: string;
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const logs = async (name: string) => (await h.vcctl(['logs', `vn/${name}`])).stdout;
  let upSince = 0; // when the VC's guests were last seen up (and ticking)
  /** The runtime's DomainDied event of VirtualNode `name` since `upSince`, if any. */
  const died = async (name: string): Promise<string | undefined> => {
    const evs = (await h.store.list<EventObject>('Event', { namespace: 'default' })).items.filter((e) =>
      e.spec?.involvedObject.kind === 'VirtualNode' && e.spec.involvedObject.name === name && e.spec.reason === 'DomainDied' &&
      Date.parse(e.spec.lastTimestamp ?? '') >= upSince);
    return evs[0]?.spec?.message;
  };
  const { tick, advances } = shareTicks(() => shared, (name) => guestHealth(name, { console: logs, died, ping: (n) => h.pingGuest(n) }));
  /** PIDs of the NFS servers running in the testbed nodes' namespaces. */
  const ganeshas = (): number[] =>
    h.testbed.nodes.flatMap((n) =>
      execFileSync('ip', ['netns', 'pids', n.netns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number).filter((p) => {
        try {
          return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ganesha.nfsd';
        } catch {
          return false;
        }
      }));

  before(async function () {
    this.timeout(10 * 60_000);
    h = await startClusterHarness({ nodes: 2, cores: 2, memoryMiB: 1024 });
  });
  after(async () => {
    await h?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && h) {
      const r = await h.vcctl(['get', 'vc,vn,vol,mig,pn', '-o', 'wide']);
      console.log(r.stdout, r.stderr, `manager log: ${h.managerLog}`);
      for (const n of ['nfsduo-0', 'nfsduo-1']) console.log(`--- ${n} console\n${(await logs(n)).slice(-1500)}`);
      // Each node's routes and its NFS server's log: what a guest's NFS traffic met there.
      for (const pn of (await h.store.list<PhysicalNode>('PhysicalNode')).items) {
        const node = h.testbed.nodes.find((n) => n.name === pn.metadata.name);
        const routes = node ? execFileSync('ip', ['-n', node.netns, 'route'], { encoding: 'utf8' }) : '(not in the testbed)';
        let ganesha = '(no log)';
        try {
          ganesha = readFileSync(nfsServerPaths(pn.spec?.runRoot ?? DEFAULT_RUN_ROOT).logPath, 'utf8').slice(-2000);
        } catch {
          // never served NFS
        }
        console.log(`--- ${pn.metadata.name} routes\n${routes}--- ${pn.metadata.name} ganesha.log (tail)\n${ganesha}`);
      }
    }
  });

  /** The VC made and Ready, one VM per node, both guests writing to its share. */
  const makeVc = async (): Promise<void> => {
    const a = await h.vcctl(['apply', '-f', '-'], VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/nfsduo', '--for=condition=Ready', '--timeout=6m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/nfsduo'])).stdout);
    const vol = await h.store.get<Volume>({ kind: 'Volume', namespace: 'default', name: 'nfsduo-shared' });
    shared = vol.status!.path!;
    upSince = Date.now();
    const [n0, n1] = [await vn('nfsduo-0'), await vn('nfsduo-1')];
    assert.notEqual(n0.spec?.physicalNode, n1.spec?.physicalNode, 'one VM per node: each mounts from its own node');
    for (const name of ['nfsduo-0', 'nfsduo-1']) await advances(name);
  };
  /**
   * Runs `scenario`, and once more on a VC made anew when a guest itself failed in it (a
   * GuestFailedError: its kernel crashed, it hung, or its domain died and was started again).
   * Under TCG a guest's kernel now and then crashes right after a live migration on this machine
   * (seen in 2 of ~170 migrations back and forth, README "Tests"); that says nothing of the shared
   * storage, which the scenario tests. A stall while both guests are up fails at once.
   */
  const onceMoreIfAGuestFailed = async (scenario: () => Promise<void>): Promise<void> => {
    try {
      await scenario();
    } catch (err) {
      if (!(err instanceof GuestFailedError)) throw err;
      console.log(`    a guest itself failed, not the shared storage: ${err.message}\n    the scenario once more on the VC made anew`);
      const d = await h.vcctl(['delete', 'vc', 'nfsduo', '--wait', '--timeout=5m']);
      assert.equal(d.code, 0, d.stderr);
      await makeVc();
      await scenario();
    }
  };

  it('both guests mount the VC shared storage from their node and see each other\'s files', async () => {
    await makeVc();
    assert.deepEqual(readdirSync(shared).filter((f) => f.startsWith('tick-')).sort(), ['tick-nfsduo-0', 'tick-nfsduo-1']);
    // each guest lists the other's file: written through another node's NFS server, same directory
    await waitFor('nfsduo-0 sees tick-nfsduo-1', async () => /NFS-SEES [^\n]*tick-nfsduo-1/.test(await logs('nfsduo-0')), 60_000, 1000);
    await waitFor('nfsduo-1 sees tick-nfsduo-0', async () => /NFS-SEES [^\n]*tick-nfsduo-0/.test(await logs('nfsduo-1')), 60_000, 1000);
    assert.equal((ganeshas()).length, 2, 'one NFS server per node hosting the VC');
  });

  it('live-migrates a VM with the share mounted; it goes on writing to it from its new node', () => onceMoreIfAGuestFailed(async () => {
    const v = await vn('nfsduo-1');
    const target = (await vn('nfsduo-0')).status!.host!;
    const before = tick('nfsduo-1');
    const m = await h.vcctl(['migrate', 'vn/nfsduo-1', '--to', target, '--wait', '--timeout=3m']);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const mig = (await h.store.list<Migration>('Migration', { namespace: 'default' })).items
      .filter((x) => x.spec?.virtualNode === 'nfsduo-1').sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '')).at(-1);
    assert.equal(mig?.status?.phase, 'Succeeded', mig?.status?.message);
    await waitFor('nfsduo-1 runs on the target', async () => (await vn('nfsduo-1')).status?.host === target, 60_000, 500);
    assert.notEqual(v.status?.host, target);
    const after = await advances('nfsduo-1');
    assert.ok(after > before, `the same guest's counter went on (${before} -> ${after}): not a reboot`);
    await advances('nfsduo-0');
  }));

  it('suspends the VC and resumes it; both guests go on writing to the share where they left off', () => onceMoreIfAGuestFailed(async () => {
    const before = { a: tick('nfsduo-0'), b: tick('nfsduo-1') };
    const s = await h.vcctl(['suspend', 'vc/nfsduo', '--wait', '--timeout=5m']);
    assert.equal(s.code, 0, s.stderr);
    const frozen = { a: tick('nfsduo-0'), b: tick('nfsduo-1') };
    const r = await h.vcctl(['resume', 'vc/nfsduo', '--wait', '--timeout=5m']);
    assert.equal(r.code, 0, r.stderr);
    for (const [name, was, at] of [['nfsduo-0', before.a, frozen.a], ['nfsduo-1', before.b, frozen.b]] as const) {
      const now = await advances(name);
      assert.ok(now > at && at >= was, `${name}: ${was} before, ${at} while suspended, ${now} after resume`);
      assert.ok(now < at + 60, `${name} counts on from where it was (${at} -> ${now}), it did not restart`);
    }
  }));

  it('deleting the VC stops the NFS servers it needed', async () => {
    const d = await h.vcctl(['delete', 'vc', 'nfsduo', '--wait', '--timeout=5m']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('no NFS server left on the nodes', async () => (ganeshas()).length === 0, 60_000, 500);
  });
});
