// The pure parts of OCFS2 shared storage on full nodes (reconcilers/network/shared-fs-plan.ts,
// drivers/shared-fs/node-state.ts' parser, the hold-back of taps): which node mounts, exports,
// unmounts, joins and leaves o2cb, from where the VMs are and what the node has.
import assert from 'node:assert/strict';
import type { ObjectRef } from '../../api/store/types.js';
import type { ApiObject, PhysicalNode, VirtualCluster } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { Ocfs2SharedFs } from '../../drivers/shared-fs/ocfs2-shared-fs.js';
import { lvOfDevice, parseSharedFsNode } from '../../drivers/shared-fs/node-state.js';
import { AppliedNetworks, holdBack } from '../../reconcilers/network/controller.js';
import type { VmNetwork } from '../../reconcilers/network/host-plan.js';
import {
  O2CB_CLUSTER, o2cbMembers, observedOcfs2Shares, ocfs2Slots, planSharedFsNode, sharedVolumeRef, type Ocfs2Share, type SharedFsNodeInput,
} from '../../reconcilers/network/shared-fs-plan.js';
import { OCFS2_NEEDS_SAN, sharedOcfs2For } from '../../reconcilers/storage/shared-ocfs2.js';
import { WaitingError } from '../../controllers/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

const pn = (name: string, address: string, san = true) =>
  ({ kind: 'PhysicalNode', metadata: { name }, spec: { address, ...(san ? { sanDevice: '/dev/disk/by-id/virtio-vl-san' } : {}) } }) as unknown as PhysicalNode;
const vcObj = (name: string, uid: string, filesystem: 'nfs' | 'ocfs2' | 'none', nodes = 2) =>
  ({ kind: 'VirtualCluster', metadata: { name, namespace: 'lab', uid }, spec: { nodes, sharedStorage: { sizeGiB: 1, filesystem } } }) as unknown as VirtualCluster;
const vm = (key: string, cluster: string, host: string | undefined, incomingHost?: string): VmNetwork =>
  ({ key, cluster, ip: '10.9.0.2', subnet: '10.9.0.0/24', gateway: '10.9.0.1', host, incomingHost });

const fs = new Ocfs2SharedFs(new LocalTransport(), { cluster: O2CB_CLUSTER });
const A = sharedVolumeRef(vcObj('a', 'uid-a', 'ocfs2'));
const B = sharedVolumeRef(vcObj('b', 'uid-b', 'ocfs2'));
const share = (ref: typeof A, made = true): Ocfs2Share => ({ cluster: `lab/${ref.vc}`, ref, made });
const members = o2cbMembers([pn('blade1', '198.18.0.11'), pn('blade2', '198.18.0.12')]);
const noNfs = { threads: 0, exports: [] };
const input = (over: Partial<SharedFsNodeInput>): SharedFsNodeInput => ({
  host: 'blade1', vms: [], shares: [], members,
  observed: { cluster: undefined, members: [], mounts: [], nfs: noNfs },
  mountPoint: (r) => fs.mountPoint(r), keepOnline: false, ...over,
});
const online = { cluster: O2CB_CLUSTER, members: ['blade1', 'blade2'] };
const servedA = { ...online, mounts: [{ mountPoint: '/vc/lab/a', ref: A }], nfs: { threads: 8, exports: [{ path: '/vc/lab/a', clients: '10.9.0.0/24', options: [] }] } };

describe('OCFS2 shared storage: the o2cb cluster and slots', () => {
  it('members are the full nodes with IPv4 addresses, numbered in natural name order', () => {
    const got = o2cbMembers([pn('blade10', '198.18.0.20'), pn('blade2', '198.18.0.12'), pn('ns1', '198.18.0.30', false), pn('blade1', 'blade1.example')]);
    assert.deepEqual(got, [{ name: 'blade2', address: '198.18.0.12', number: 0 }, { name: 'blade10', address: '198.18.0.20', number: 1 }]);
  });
  it('slots: one per node that may host the VC, at most every full node, at least one', () => {
    assert.equal(ocfs2Slots(vcObj('a', 'u', 'ocfs2', 4), 2), 2);
    assert.equal(ocfs2Slots(vcObj('a', 'u', 'ocfs2', 1), 3), 1);
    assert.equal(ocfs2Slots(vcObj('a', 'u', 'ocfs2', 4), 0), 1);
  });
  it('shares: ocfs2 VCs only (not one being deleted), made once their shared Volume is Ready', () => {
    const objects: ApiObject[] = [
      vcObj('a', 'uid-a', 'ocfs2'), vcObj('b', 'uid-b', 'ocfs2'), vcObj('n', 'uid-n', 'nfs'),
      // being deleted: no node keeps its volume (its VMs' objects go only after the VC)
      { ...vcObj('d', 'uid-d', 'ocfs2'), metadata: { name: 'd', namespace: 'lab', uid: 'uid-d', deletionTimestamp: '2026-12-05T13:38:56Z' } } as unknown as ApiObject,
      { kind: 'Volume', metadata: { name: 'a-shared', namespace: 'lab' }, spec: { role: 'shared', cluster: 'a' }, status: { phase: 'Ready', path: '/vc/lab/a' } } as unknown as ApiObject,
      { kind: 'Volume', metadata: { name: 'b-shared', namespace: 'lab' }, spec: { role: 'shared', cluster: 'b' }, status: { phase: 'Pending' } } as unknown as ApiObject,
    ];
    const cache: CacheReader = {
      get: <T extends ApiObject>(r: ObjectRef) => objects.find((o) => o.kind === r.kind && o.metadata.name === r.name && o.metadata.namespace === r.namespace) as T | undefined,
      list: <T extends ApiObject>(kind: string) => objects.filter((o) => o.kind === kind) as T[],
    };
    assert.deepEqual(observedOcfs2Shares(cache), [share(A, true), share(B, false)]);
  });
});

describe('OCFS2 shared storage: one node\'s plan', () => {
  it('a VM here of a made ocfs2 VC: online in o2cb, then mount and export to the VC subnet', () => {
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade1'), vm('lab.a-1', 'lab/a', 'blade2')], shares: [share(A)] }));
    assert.deepEqual(p.steps, [{ type: 'online', members }, { type: 'serve', cluster: 'lab/a', ref: A, clients: '10.9.0.0/24', unexportFirst: false }]);
    assert.deepEqual(p.waiting, []);
  });
  it('already mounted and exported so, and online with every member: nothing to do', () => {
    assert.deepEqual(planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade1')], shares: [share(A)], observed: servedA })).steps, []);
  });
  it('a full node that joined: the mounter runs o2cb online again with the new member', () => {
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade1')], shares: [share(A)], observed: { ...servedA, members: ['blade1'] } }));
    assert.deepEqual(p.steps, [{ type: 'online', members }]);
  });
  it('exported to another subnet: unexported, then served again (mount is idempotent)', () => {
    const observed = { ...servedA, nfs: { threads: 8, exports: [{ path: '/vc/lab/a', clients: '10.8.0.0/24', options: [] }] } };
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade1')], shares: [share(A)], observed }));
    assert.deepEqual(p.steps.map((s) => s.type), ['online', 'serve']);
    assert.equal(p.steps[1]!.type === 'serve' && p.steps[1]!.unexportFirst, true);
  });
  it('the target of an incoming migration serves it before the switch-over; a VC not yet made waits', () => {
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade2', 'blade1'), vm('lab.b-0', 'lab/b', 'blade1')], shares: [share(A), share(B, false)] }));
    assert.deepEqual(p.steps.map((s) => s.type), ['online', 'serve']);
    assert.deepEqual(p.waiting, ['lab/b']);
  });
  it('no VM of the VC here any more: unexport and unmount, then leave o2cb', () => {
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade2')], shares: [share(A)], observed: servedA }));
    assert.deepEqual(p.steps, [{ type: 'unmount', ref: A }, { type: 'offline' }]);
  });
  it('the VC gone from the cache: its volume, known by mount point and LV, is unmounted', () => {
    const p = planSharedFsNode(input({ observed: servedA }));
    assert.deepEqual(p.steps, [{ type: 'unmount', ref: A }, { type: 'offline' }]);
  });
  it('stays in o2cb while a volume is to be formatted (keepOnline), and while a mount not ours holds a heartbeat', () => {
    assert.deepEqual(planSharedFsNode(input({ observed: { ...online, mounts: [], nfs: noNfs }, keepOnline: true })).steps, []);
    assert.deepEqual(planSharedFsNode(input({ observed: { ...online, mounts: [{ mountPoint: '/mnt/x' }], nfs: noNfs } })).steps, []);
    assert.deepEqual(planSharedFsNode(input({})).steps, [], 'offline already: nothing');
  });
  it('another VC\'s volume at the mount point (a VC re-made under the same name): the old one is unmounted first', () => {
    const A2 = { ...A, vcUid: 'uid-a2' };
    const p = planSharedFsNode(input({ vms: [vm('lab.a-0', 'lab/a', 'blade1')], shares: [share(A2)], observed: servedA }));
    assert.deepEqual(p.steps.map((s) => s.type), ['unmount', 'online', 'serve']);
  });
});

describe('OCFS2 shared storage: reading a node, holding back taps, refusing namespace nodes', () => {
  it('parses the node\'s cluster, members, OCFS2 mounts (LV by path or dm name) and exports', () => {
    const out = [
      'cluster virtualinux', 'member blade2', 'member blade1',
      'ocfs2 /vc/lab/a /dev/vlsan/uid-a_a-shared',
      'ocfs2 /vc/lab/b /dev/mapper/vlsan-uid--b_b--shared',
      'ocfs2 /mnt/other\\040dir /dev/sdb1',
      'threads 8', 'export /vc/lab/a\t10.9.0.0/24(rw,sync,fsid=x)',
    ].join('\n');
    const s = parseSharedFsNode(out, 'vlsan');
    assert.equal(s.cluster, 'virtualinux');
    assert.deepEqual(s.members, ['blade1', 'blade2']);
    assert.deepEqual(s.mounts, [{ mountPoint: '/vc/lab/a', lv: 'uid-a_a-shared' }, { mountPoint: '/vc/lab/b', lv: 'uid-b_b-shared' }, { mountPoint: '/mnt/other dir' }]);
    assert.deepEqual(s.nfs.exports.map((e) => [e.path, e.clients]), [['/vc/lab/a', '10.9.0.0/24']]);
    assert.deepEqual(parseSharedFsNode('', 'vlsan'), { members: [], mounts: [], nfs: noNfs });
    assert.equal(lvOfDevice('/dev/mapper/other-x', 'vlsan'), undefined);
  });
  it('a mount maps back to its volume only when path and LV name agree', () => {
    assert.deepEqual(fs.refOf('/vc/lab/a', 'uid-a_a-shared'), A);
    assert.equal(fs.refOf('/vc/lab/a', 'uid-a_b-shared'), undefined);
    assert.equal(fs.refOf('/vc/lab/a/x', 'uid-a_a-shared'), undefined);
    assert.equal(fs.refOf('/vc/lab/a', undefined), undefined);
  });
  it('a VM whose shared storage is not served here gets no new tap; one in place keeps it', () => {
    const applied = new AppliedNetworks();
    applied.set('blade1', ['lab.a-1']);
    const vms = [vm('lab.a-0', 'lab/a', 'blade1'), vm('lab.a-1', 'lab/a', 'blade1'), vm('lab.a-2', 'lab/a', 'blade2', 'blade1'), vm('lab.n-0', 'lab/n', 'blade1')];
    const got = holdBack('blade1', vms, new Set(['lab/a']), applied);
    assert.deepEqual(got.map((v) => [v.key, v.host, v.incomingHost]), [['lab.a-1', 'blade1', undefined], ['lab.a-2', 'blade2', undefined], ['lab.n-0', 'blade1', undefined]]);
    assert.deepEqual(holdBack('blade1', vms, new Set(), applied), vms);
  });
  it('the storage controller refuses an ocfs2 VC on a storage node without the SAN disk (StorageReady False, Ocfs2NeedsSan)', () => {
    const cache: CacheReader = { get: () => undefined, list: () => [] };
    const t = new LocalTransport();
    assert.throws(() => sharedOcfs2For(vcObj('a', 'uid-a', 'ocfs2'), pn('ns1', '198.18.0.30', false), t, cache),
      (e: unknown) => e instanceof WaitingError && e.reason === OCFS2_NEEDS_SAN && /spec\.sanDevice.*ns1 has none/.test(e.message));
    const deleting = { ...vcObj('a', 'uid-a', 'ocfs2'), metadata: { name: 'a', namespace: 'lab', uid: 'uid-a', deletionTimestamp: '2026-01-01T00:00:00Z' } } as VirtualCluster;
    assert.equal(sharedOcfs2For(deleting, pn('ns1', '198.18.0.30', false), t, cache), undefined);
    assert.equal(sharedOcfs2For(vcObj('n', 'uid-n', 'nfs'), pn('ns1', '198.18.0.30', false), t, cache), undefined);
    assert.equal(sharedOcfs2For(vcObj('a', 'uid-a', 'ocfs2'), pn('blade1', '198.18.0.11'), t, cache)?.name, 'a-shared');
  });
});
