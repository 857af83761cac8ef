// OCFS2 on full testbed nodes, for real (issues 15 and 17 item 3): o2cb brought online on two
// nodes (the second joining the running cluster), a VC's shared volume made as OCFS2 on the SAN
// disk, mounted on both nodes, a file written through one node's mount read through the other's,
// re-exported over the kernel NFS server of one node and mounted over NFS from the other, and
// unexport/unmount/remove/offline leaving nothing. Registered as `it`s into a describe that owns
// two full nodes (test/testbed/full-testbed.full.test.ts: one testbed for the file, to keep the
// full tier's time down); they run in order and each needs the ones before it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { knfsdExports } from '../../drivers/nfs/kernel-nfs.js';
import { O2CB_TCG_TIMEOUTS, o2cbOffline, o2cbOnline, o2cbState, type O2cbCluster, type O2cbMember } from '../../drivers/shared-fs/o2cb.js';
import { Ocfs2SharedFs } from '../../drivers/shared-fs/ocfs2-shared-fs.js';
import type { SharedVolumeRef } from '../../drivers/shared-fs/types.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';

export interface Ocfs2Context {
  /** Two full nodes, blade1 then blade2. */
  nodes: Transport[];
  names: string[];
  addresses: string[];
  sanDevice: string;
}

const LONG = { timeoutMs: 600_000 };
const CLUSTER = 'vltest';

export function ocfs2OnFullNodesCases(get: () => Ocfs2Context): void {
  const vol: SharedVolumeRef = { namespace: 'default', vc: 'stripes', vcUid: '3f2a6c1e-9b1d-4d7e-8a55-0c1b2d3e4f50', name: 'stripes-shared' };
  const token = randomBytes(8).toString('hex');
  let fs: Ocfs2SharedFs;
  let members: O2cbMember[];
  const cluster = (m: O2cbMember[], timeouts = O2CB_TCG_TIMEOUTS): O2cbCluster => ({ name: CLUSTER, members: m, timeouts });

  it('o2cb: online on one node, then a second node joins the running cluster (TCG heartbeat thresholds on both)', async () => {
    const { nodes, names, addresses, sanDevice } = get();
    members = names.map((name, i) => ({ name, address: addresses[i]!, number: i + 1 }));
    fs = new Ocfs2SharedFs(nodes[0]!, { cluster: CLUSTER, sanDevice });
    await o2cbOnline(nodes[0]!, cluster([members[0]!]));
    const alone = await o2cbState(nodes[0]!);
    assert.equal(alone.cluster, CLUSTER);
    assert.deepEqual(alone.nodes.map((n) => [n.name, n.local]), [[names[0], true]]);
    // blade2 joins: the member list grows on blade1 (running cluster) and blade2 comes online
    await Promise.all(nodes.map((t) => o2cbOnline(t, cluster(members))));
    await Promise.all(nodes.map(async (t, i) => {
      const [s, defaults] = await Promise.all([o2cbState(t), execOk(t, ['cat', '/etc/default/o2cb'], LONG)]);
      assert.equal(s.cluster, CLUSTER);
      assert.deepEqual(s.nodes.map((n) => [n.name, n.number, n.address, n.local]).sort(),
        members.map((m, j) => [m.name, m.number, m.address, i === j]).sort());
      assert.deepEqual(s.timeouts, O2CB_TCG_TIMEOUTS);
      assert.deepEqual(s.regions, [], 'no heartbeat before a mount');
      assert.match(defaults, /^O2CB_ENABLED=true$[^]*^O2CB_HEARTBEAT_THRESHOLD=151$/m);
    }));
    // a node is in one o2cb cluster at a time
    await assert.rejects(o2cbOnline(nodes[1]!, { ...cluster(members), name: 'other' }), /in o2cb cluster vltest, not other/);
  });

  it('OCFS2 on the SAN: made by the storage node, mounted on both nodes; a file written through one mount is read through the other', async () => {
    const { nodes, names } = get();
    await fs.create(vol, 128 * 1048576, 2);
    await fs.create(vol, 128 * 1048576, 2); // present: left as it is
    const mp = fs.mountPoint(vol);
    assert.equal(mp, '/vc/default/stripes');
    await fs.mount(vol, nodes[0]!);
    await fs.mount(vol, nodes[1]!);
    await fs.mount(vol, nodes[1]!); // mounted already: no-op
    await execOk(nodes[0]!, ['sh', '-c', 'printf %s "$2" > "$1/from-blade1" && sync', 'sh', mp, token], LONG);
    assert.equal(await execOk(nodes[1]!, ['cat', `${mp}/from-blade1`], LONG), token);
    assert.deepEqual((await fs.mountedBy(vol)).sort(), [...names].sort(), 'the slot map names both nodes');
    await Promise.all(nodes.map(async (t) => {
      const [state, o2cb] = await Promise.all([fs.state(vol, t), o2cbState(t)]);
      assert.deepEqual(state, { mounted: true, exportedTo: [] });
      assert.equal(o2cb.regions.length, 1, 'one heartbeat region: the mounted volume');
    }));
    // refused while mounted: removing the volume, changing the heartbeat threshold
    await assert.rejects(fs.remove(vol), /is mounted on/);
    await assert.rejects(o2cbOnline(nodes[0]!, cluster(members, { ...O2CB_TCG_TIMEOUTS, deadThreshold: 31 })), /cannot set heartbeat\/dead_threshold to 31: it stays 151/);
  });

  it('kernel NFS: blade1 re-exports its mount; blade2 mounts it over NFSv4 and its writes land in the OCFS2 volume', async () => {
    const { nodes, addresses } = get();
    const mp = fs.mountPoint(vol);
    const subnet = `${addresses[0]!.split('.').slice(0, 3).join('.')}.0/24`; // the testbed's subnet, not a VC's
    await fs.export(vol, nodes[0]!, subnet);
    await fs.export(vol, nodes[0]!, subnet); // exported already: no-op
    assert.deepEqual((await fs.state(vol, nodes[0]!)).exportedTo, [subnet]);
    // one command on blade2: mount over NFS from blade1, read, write, unmount; then read the write
    // through blade2's own OCFS2 mount
    const out = await execOk(nodes[1]!, ['sh', '-c',
      'set -e; mkdir -p /mnt/vl-nfs; mount -t nfs4 -o vers=4.2 "$1:$2" /mnt/vl-nfs; cat /mnt/vl-nfs/from-blade1; echo; ' +
      'printf %s "$3" > /mnt/vl-nfs/over-nfs; sync; umount /mnt/vl-nfs; rmdir /mnt/vl-nfs; cat "$2/over-nfs"',
      'sh', addresses[0]!, mp, `nfs-${token}`], LONG);
    assert.equal(out, `${token}\nnfs-${token}`);
    assert.equal(await execOk(nodes[0]!, ['cat', `${mp}/over-nfs`], LONG), `nfs-${token}`);
  });

  it('kernel NFS over OCFS2: a file rewritten through the other node\'s mount is read anew over NFS (no delegation keeps the old copy)', async () => {
    // Each node's server knows only the opens made through it: a read delegation blade1 handed to
    // an NFS client would never be recalled by a write through blade2's OCFS2 mount, and the client
    // would go on reading its cached copy (seen: a guest reading a peer's round 4 for minutes).
    const { nodes, addresses } = get();
    const mp = fs.mountPoint(vol);
    const out = await execOk(nodes[1]!, ['sh', '-c',
      'set -e; printf %s first > "$2/rewritten"; sync; mkdir -p /mnt/vl-nfs; mount -t nfs4 -o vers=4.1 "$1:$2" /mnt/vl-nfs; ' +
      'cat /mnt/vl-nfs/rewritten; echo; cat /mnt/vl-nfs/rewritten; echo; ' +
      'printf %s second > "$2/rewritten"; sync; cat /mnt/vl-nfs/rewritten; echo; umount /mnt/vl-nfs; rmdir /mnt/vl-nfs',
      'sh', addresses[0]!, mp], LONG);
    assert.equal(out, 'first\nfirst\nsecond\n');
    assert.equal((await execOk(nodes[0]!, ['cat', '/proc/sys/fs/leases-enable'], LONG)).trim(), '0', 'blade1, which exports it, hands out no leases');
  });

  it('unmount (unexporting first), remove and o2cb offline leave no mount, export, nfsd thread, mapped device, LV or cluster', async () => {
    const { nodes } = get();
    await Promise.all(nodes.map((t) => fs.unmount(vol, t)));
    await fs.unmount(vol, nodes[0]!); // not mounted: no-op
    await fs.remove(vol);
    await fs.remove(vol); // absent: no-op
    await Promise.all(nodes.map(async (t) => {
      const [state, nfs, seen, o2cb] = await Promise.all([fs.state(vol, t), knfsdExports(t),
        execOk(t, ['sh', '-c', 'dmsetup ls; cat /proc/mounts'], LONG), o2cbState(t)]);
      assert.deepEqual(state, { mounted: false, exportedTo: [] });
      assert.deepEqual([nfs.threads, nfs.exports], [0, []]);
      assert.doesNotMatch(seen, /shared| ocfs2 | nfs4 /);
      assert.deepEqual(o2cb.regions, []);
    }));
    assert.equal(await fs.vg.lv(fs.lvName(vol)), undefined);
    await Promise.all(nodes.map((t) => o2cbOffline(t, CLUSTER)));
    await Promise.all(nodes.map(async (t) => {
      const [s, defaults] = await Promise.all([o2cbState(t), execOk(t, ['cat', '/etc/default/o2cb'], LONG)]);
      assert.equal(s.cluster, undefined);
      assert.match(defaults, /^O2CB_ENABLED=false$/m);
    }));
  });
}
