// A VirtualCluster on `storageDriver: evms`, then one on `lvm`, end to end under the runtime on two
// full Xen nodes (issue 17 item 5, docs/adr/0006): the VC's original is a read-only LV on the
// testbed's SAN disk, each VM's disk a snapshot of it mapped on the node that runs the VM only,
// and moved with it: for evms a device-mapper snapshot target (`vlsnap-<vc uid>_<vm>-disk`), for
// lvm a linear device of ours (`vlthin-<vc uid>_<vm>-disk`) over a thin snapshot with the original
// as external origin in a pool of its own (LVM's device `vlsan-<uid>_<vm>--disk`, hyphens doubled).
// A VM live-migrates, its snapshot handed over at the switchover (lvm: the pool unmapped on the
// source before the target maps it); for lvm also a suspend and a resume elsewhere move the
// activations. Each guest's first-boot script writes a marker file
// into its own root disk, drops its caches and reads it back, then every 5 s prints the marker
// files it finds on its disk (read from the disk again each time). So the guests' consoles say
// what each disk holds; the dom0s say where each snapshot is mapped, that the original is still
// the template's image, and that nothing is left after the delete. One testbed per driver; the
// cases run in order on one VC of 4 VMs (2 per node). Long: on Dec 6 (host load 3-11) evms took
// 47 min (its live migration 13 min, the reset's fresh boots with 3 VMs on one node 19 min), lvm
// 19-25 min for its cases run in two parts.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { EventObject, Migration, OSTemplate, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import { execOk } from '../../drivers/transport/types.js';
import { waitFor } from '../controllers/helpers.js';
import { fullXenSuite, vmConsole } from './full-dom0.js';

const VC = 'san';
const VMS = [0, 1, 2, 3].map((i) => `${VC}-${i}`);

/**
 * The first-boot script: the marker files already on the disk (`BEFORE`), a new marker with a
 * random id (`WROTE`), read back from the disk after a sync and a cache drop (`READBACK`), then
 * every 5 s `ROUND <vm> <n> <every marker file's content>,` read from the disk again.
 */
const MARKERS = `markers() { for f in /marker-*; do [ -e "$f" ] && cat "$f"; done | tr '\\n' ,; }
echo "BEFORE $VC_NODE_NAME [$(markers)]"
id=$(cat /proc/sys/kernel/random/uuid)
echo "MARKER $VC_NODE_NAME $id" > "/marker-$VC_NODE_NAME"
sync
echo 3 > /proc/sys/vm/drop_caches
echo "WROTE $VC_NODE_NAME $id"
echo "READBACK $VC_NODE_NAME [$(markers)]"
(n=0; while true; do
  n=$((n + 1))
  echo 3 > /proc/sys/vm/drop_caches
  echo "ROUND $VC_NODE_NAME $n [$(markers)]"
  sleep 5
done) > /dev/console 2>&1 &`;

type SanDriver = 'evms' | 'lvm';

const vcYaml = (driver: SanDriver) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${VC}, namespace: default}
spec:
  nodes: ${VMS.length}
  template: busybox
  hypervisor: xen
  storageDriver: ${driver}
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 32}
  network: {subnet: 10.212.0.0/24}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
  firstBoot:
    script: |
${MARKERS.replace(/^/gm, '      ')}
`;

const stamp = () => `${new Date().toISOString().slice(11, 19)} UTC, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`;

/** LVM's device-mapper names double the hyphens of the VG's and the LV's names. */
const dmEscape = (s: string) => s.replace(/-/g, '--');

for (const driver of ['evms', 'lvm'] as const) describe(`a VirtualCluster on ${driver} snapshots under the runtime on two full Xen nodes`, function () {
  this.timeout(45 * 60_000);
  const suite = fullXenSuite({
    sanMiB: 8192,
    onFailure: async () => {
      for (const name of VMS) console.log(`console of ${name} (last 25 lines):\n${(await logs(name).catch((e: Error) => e.message)).trimEnd().split('\n').slice(-25).join('\n')}`);
      for (const node of dom0.keys()) console.log(`${node} dmsetup: ${(await dmNames(node).catch((e: Error) => [e.message])).join(' ')}`);
    },
  });
  let h: ClusterHarness;
  const dom0 = suite.dom0;
  let uid = '';
  /** Each guest's marker id written at its first boot (case 2). */
  const markerIds = new Map<string, string>();
  let caseStart = 0;
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const logs = (name: string): Promise<string> => vmConsole(h, name);
  const sh = (node: string, script: string, ...args: string[]) => execOk(dom0.get(node)!, ['sh', '-c', script, 'sh', ...args], { timeoutMs: 300_000 });
  /** The device-mapper name of a VM's disk where it is mapped. */
  const snapDev = (vm: string) => (driver === 'evms' ? `vlsnap-${uid}_${vm}-disk` : `vlthin-${uid}_${vm}-disk`);
  /** The device whose status tells what the VM wrote: evms the snapshot, lvm LVM's thin LV under ours. */
  const statusDev = (vm: string) => (driver === 'evms' ? snapDev(vm) : `vlsan-${dmEscape(uid)}_${dmEscape(vm)}--disk`);
  /** Where a VM's thin pool is mapped (lvm; one node at most, ever). */
  const poolOn = async (vm: string): Promise<string[]> => {
    const out: string[] = [];
    for (const node of dom0.keys()) if ((await dmNames(node)).includes(`${statusDev(vm)}.pool-tpool`)) out.push(node);
    return out;
  };
  /** The original's mapping on a node that maps a snapshot of it (lvm: its read-only `-real` layer, or itself). */
  const original = async (node: string): Promise<string> => {
    const base = `vlsan-${dmEscape(uid)}_${VC}--original`;
    const name = (await dmNames(node)).find((n) => n === base || n === `${base}-real`);
    assert.ok(name, `${node} maps no ${base}: ${(await dmNames(node)).join(' ')}`);
    return `/dev/mapper/${name}`;
  };
  /** The device-mapper table of a VM's disk: evms a snapshot target (64 KiB chunks), lvm a linear one over its thin LV. */
  const diskTable = driver === 'evms' ? / snapshot \d+:\d+ \d+:\d+ P 128/ : /^0 \d+ linear \d+:\d+ 0/;
  /** What the VM's writes took from its snapshot's space (dmsetup status): evms the store's allocated sectors, lvm the thin LV's mapped sectors. */
  const written = (status: string): number => Number((driver === 'evms' ? /snapshot (\d+)\// : /thin (\d+) /).exec(status)?.[1] ?? 0);
  /** The device-mapper devices of a dom0, one name a line. */
  const dmNames = async (node: string): Promise<string[]> =>
    (await sh(node, 'dmsetup ls 2>/dev/null | awk \'NF > 1 { print $1 }\'; true')).split('\n').filter(Boolean);
  /** The nodes that map `vm`'s snapshot. */
  const mappedOn = async (vm: string): Promise<string[]> => {
    const out: string[] = [];
    for (const node of dom0.keys()) if ((await dmNames(node)).includes(snapDev(vm))) out.push(node);
    return out;
  };
  /** The markers a guest's console lines say its disk holds, at the last ROUND (after `from`). */
  const lastRound = (text: string, vm: string): { n: number; markers: string } | undefined => {
    const all = [...text.matchAll(new RegExp(`ROUND ${vm} (\\d+) \\[([^\\]]*)\\]`, 'g'))];
    const m = all.at(-1);
    return m ? { n: Number(m[1]), markers: m[2]! } : undefined;
  };
  /** The original still holds the template's image exactly (qemu-img compare in its node, read-only). */
  const originalIsTemplate = async (node: string): Promise<void> => {
    const tpl = await h.store.get<OSTemplate>({ kind: 'OSTemplate', name: 'busybox' });
    const out = await sh(node, 'qemu-img compare -U -f "$2" -F raw "$3" "$1"; echo "compare=$?"', await original(node), tpl.spec!.image.format ?? 'qcow2', tpl.spec!.image.path!);
    assert.match(out, /compare=0/, `${node}: ${out}`);
  };
  const begin = (name: string) => {
    caseStart = Date.now();
    console.log(`      [${name}] start ${stamp()}`);
  };
  afterEach(function () {
    console.log(`      [${this.currentTest?.title.slice(0, 40)}] ${this.currentTest?.state} after ${((Date.now() - caseStart) / 1000).toFixed(0)} s, end ${stamp()}`);
  });

  // the SAN disk (sparse): the 1 GiB original and 4 exception stores, each sized for the whole original
  before(() => {
    h = suite.h;
    console.log(`      testbed and manager up, ${stamp()}`);
  });

  it('a VC of 4 VMs on 2 nodes reaches Ready; each VM\'s snapshot is mapped on its own node only', async () => {
    begin('ready');
    const a = await h.vcctl(['apply', '-f', '-'], vcYaml(driver));
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', `vc/${VC}`, '--for=condition=Ready', '--timeout=35m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', `vc/${VC}`])).stdout);
    uid = (await h.store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: VC })).metadata.uid!;
    const nodes = await Promise.all(VMS.map(async (name) => (await vn(name)).spec?.physicalNode));
    assert.deepEqual(nodes, ['blade1', 'blade2', 'blade1', 'blade2'], 'Cyclic spreads the four VMs');
    for (const [i, name] of VMS.entries()) {
      const v = await vn(name);
      assert.equal(v.status?.phase, 'Running');
      assert.equal(v.status?.host, nodes[i]);
      assert.match(await logs(name), new RegExp(`VIRTUALINUX-READY ${name} `));
      assert.deepEqual(await mappedOn(name), [nodes[i]], `${name}'s snapshot mapped where it runs, and only there`);
      // its disk is the snapshot (evms) or thin (lvm) target
      const table = await sh(nodes[i]!, 'dmsetup table "$1"', snapDev(name));
      assert.match(table, diskTable, table);
      if (driver === 'lvm') {
        assert.match(await sh(nodes[i]!, 'dmsetup table "$1"', statusDev(name)), /^0 \d+ thin \d+:\d+ \d+ \d+:\d+/, `${name}: LVM's thin LV under it`);
        assert.deepEqual(await poolOn(name), [nodes[i]], `${name}'s pool mapped where it runs, and only there`);
      }
    }
    const disk = await h.store.get<Volume>({ kind: 'Volume', namespace: 'default', name: `${VMS[0]}-disk` });
    assert.equal(disk.spec?.driver, driver);
  });

  it('each guest writes a marker into its own disk and reads it back; the other disks and the original do not change', async () => {
    begin('markers');
    for (const name of VMS) {
      const text = await waitFor(`${name}'s marker written and read back`, async () => {
        const t = await logs(name);
        return /READBACK /.test(t) ? t : undefined;
      }, 300_000, 5000);
      assert.match(text, new RegExp(`BEFORE ${name} \\[\\]`), `${name}'s fresh disk held no marker`);
      const id = new RegExp(`WROTE ${name} (\\S+)`).exec(text)?.[1];
      assert.ok(id, text.slice(-1500));
      markerIds.set(name, id);
      assert.match(text, new RegExp(`READBACK ${name} \\[MARKER ${name} ${id},\\]`));
    }
    // once all four wrote: each disk, read again by its guest, holds its own marker and no other
    const since = new Map<string, number>();
    for (const name of VMS) since.set(name, lastRound(await logs(name), name)?.n ?? 0);
    for (const name of VMS) {
      const r = await waitFor(`${name} reading its disk again`, async () => {
        const x = lastRound(await logs(name), name);
        return x && x.n > since.get(name)! ? x : undefined;
      }, 180_000, 5000);
      assert.equal(r.markers, `MARKER ${name} ${markerIds.get(name)},`, `${name}'s disk`);
    }
    // the writes went into each snapshot's own space (evms: its exception store; lvm: its pool)
    for (const name of VMS) {
      const node = (await vn(name)).status!.host!;
      const st = await sh(node, 'dmsetup status "$1"', statusDev(name));
      assert.ok(written(st) > 0, `${name}: ${st}`);
    }
    // the original, read-only on every node, is still the template's image, byte for byte
    await originalIsTemplate('blade1');
  });

  it('live-migrates a VM: its snapshot is mapped on the target only afterwards, the guest goes on with its marker', async () => {
    begin('migrate');
    const name = VMS[0]!;
    const [src, dst] = ['blade1', 'blade2'];
    assert.equal((await vn(name)).status?.host, src);
    const before = lastRound(await logs(name), name)!.n;
    const m = await h.vcctl(['migrate', `vn/${name}`, '--to', dst, '--wait', '--timeout=20m']);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const done = (await h.store.list<Migration>('Migration', { namespace: 'default' })).items.find((x) => x.spec?.virtualNode === name && x.status?.phase === 'Succeeded');
    assert.ok(done, `a Succeeded Migration of ${name}`);
    console.log(`      ${done.status!.message}`);
    await waitFor(`${name} bound and running on ${dst}`, async () => {
      const v = await vn(name);
      return v.spec?.physicalNode === dst && v.status?.host === dst && v.status.phase === 'Running' ? true : undefined;
    }, 120_000, 2000);
    // the activation moved: the source's mapping is gone (its leftovers go after the switchover)
    await waitFor(`${name}'s snapshot mapped on ${dst} only`, async () => ((await mappedOn(name)).join() === dst ? true : undefined), 180_000, 5000);
    if (driver === 'lvm') assert.deepEqual(await poolOn(name), [dst], `${name}'s pool mapped on ${dst} only`);
    // the guest went on (the console log is the target's now): rounds count on, no new boot, and
    // what it reads from its disk there is its marker, and only it
    const text = await waitFor(`${name} reading its disk on ${dst}`, async () => {
      const t = await logs(name);
      const x = lastRound(t, name);
      return x && x.n > before ? t : undefined;
    }, 180_000, 5000);
    assert.doesNotMatch(text, /VIRTUALINUX-READY|BEFORE /, 'migrated, not booted again');
    assert.equal(lastRound(text, name)!.markers, `MARKER ${name} ${markerIds.get(name)},`);
    // the VMs that did not move still map their snapshots where they run
    for (const other of VMS.slice(1)) assert.deepEqual(await mappedOn(other), [(await vn(other)).status!.host!], other);
  });

  if (driver === 'lvm') it('a suspend and a resume elsewhere move the activations, the guests go on with their markers', async () => {
    begin('resume elsewhere');
    const before = new Map<string, number>();
    for (const vm of VMS) before.set(vm, lastRound(await logs(vm), vm)!.n);
    const s = await h.vcctl(['suspend', `vc/${VC}`, '--wait', '--timeout=20m']);
    assert.equal(s.code, 0, s.stderr);
    for (const vm of VMS) assert.deepEqual(await mappedOn(vm), [], `${vm} unmapped while suspended`);
    const was = new Map<string, string>();
    for (const vm of VMS) was.set(vm, (await vn(vm)).spec!.physicalNode!);
    // placed again while suspended (Block instead of Cyclic): some VMs resume on the other node
    const ref = { kind: 'VirtualCluster', namespace: 'default', name: VC };
    const vc = await h.store.get<VirtualCluster>(ref);
    await h.store.update<VirtualCluster>({ ...vc, spec: { ...vc.spec!, placement: { strategy: 'Block', mode: 'Lazy' } } });
    await waitFor('a VM re-placed on the other node', async () => {
      for (const vm of VMS) if ((await vn(vm)).spec?.physicalNode !== was.get(vm)) return true;
      return undefined;
    }, 120_000, 1000);
    const r = await h.vcctl(['resume', `vc/${VC}`, '--wait', '--timeout=25m']);
    assert.equal(r.code, 0, r.stderr);
    const moved: string[] = [];
    for (const vm of VMS) {
      const v = await vn(vm);
      assert.equal(v.status?.host, v.spec?.physicalNode);
      if (v.status!.host !== was.get(vm)) moved.push(vm);
      // its activation followed it: mapped where it runs now, and only there
      assert.deepEqual(await mappedOn(vm), [v.status!.host!], `${vm} (was on ${was.get(vm)})`);
      // restored, not booted: its rounds go on, reading its marker from its disk on the new node
      const text = await waitFor(`${vm} reading its disk again`, async () => {
        const t = await logs(vm);
        const x = lastRound(t, vm);
        return x && x.n > before.get(vm)! ? t : undefined;
      }, 240_000, 5000);
      assert.doesNotMatch(text, /BEFORE /, `${vm} restored, not booted again`);
      assert.equal(lastRound(text, vm)!.markers, `MARKER ${vm} ${markerIds.get(vm)},`, vm);
    }
    assert.ok(moved.length > 0, 'a VM resumed on another node');
    console.log(`      resumed elsewhere: ${moved.join(', ')}`);
  });

  it('a template revision of the suspended VC resets the snapshots: after the resume the markers are gone and the guests boot fresh', async () => {
    begin('reset');
    const s = await h.vcctl(['suspend', `vc/${VC}`, '--wait', '--timeout=20m']);
    assert.equal(s.code, 0, s.stderr);
    // suspended: no domain, no snapshot mapped anywhere
    for (const doms of (await h.domains()).values()) assert.deepEqual(doms.filter((d) => d.name.startsWith(`default.${VC}-`)), []);
    for (const name of VMS) assert.deepEqual(await mappedOn(name), [], `${name} unmapped while suspended`);
    // the template's revision (what the storage plan compares with the Volumes' templateRevision)
    const tref = { kind: 'OSTemplate', name: 'busybox' };
    const tpl = await h.store.get<OSTemplate>(tref);
    const rev = tpl.spec!.revision + 1;
    await h.store.update<OSTemplate>({ ...tpl, spec: { ...tpl.spec!, revision: rev } });
    await waitFor('every disk reset to the new revision, storage Ready', async () => {
      const vols = await Promise.all(VMS.map((n) => h.store.get<Volume>({ kind: 'Volume', namespace: 'default', name: `${n}-disk` })));
      const vc = await h.store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: VC });
      return vols.every((v) => v.status?.phase === 'Ready' && v.status.templateRevision === rev) &&
        vc.status?.conditions?.some((c) => c.type === 'StorageReady' && c.status === 'True') ? true : undefined;
    }, 900_000, 5000);
    const ev = (await h.store.list<EventObject>('Event')).items.filter((x) => x.spec?.reason === 'SnapshotsReset');
    assert.equal(ev.length, 1, JSON.stringify(ev.map((x) => x.spec?.message)));
    const r = await h.vcctl(['resume', `vc/${VC}`, '--wait', '--timeout=25m']);
    assert.equal(r.code, 0, r.stderr);
    const w = await h.vcctl(['wait', `vc/${VC}`, '--for=condition=Ready', '--timeout=15m']);
    assert.equal(w.code, 0, w.stderr);
    for (const name of VMS) {
      const text = await waitFor(`${name} booted fresh and read its disk`, async () => {
        const t = await logs(name);
        return /READBACK /.test(t) && lastRound(t, name) ? t : undefined;
      }, 300_000, 5000);
      assert.match(text, new RegExp(`VIRTUALINUX-READY ${name} `), `${name} booted, not restored`);
      assert.match(text, new RegExp(`BEFORE ${name} \\[\\]`), `${name}'s reset disk held no marker`);
      const id = new RegExp(`WROTE ${name} (\\S+)`).exec(text)![1]!;
      assert.notEqual(id, markerIds.get(name));
      assert.equal(lastRound(text, name)!.markers, `MARKER ${name} ${id},`);
      assert.deepEqual(await mappedOn(name), [(await vn(name)).status!.host!], `${name} mapped where it runs`);
    }
    await originalIsTemplate((await vn(VMS[0]!)).status!.host!);
  });

  it('deleting the VC leaves no LV, dm device, mount or export of it on either node', async () => {
    begin('delete');
    const d = await h.vcctl(['delete', 'vc', VC, '--wait', '--timeout=15m']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the VirtualNodes and Volumes gone', async () =>
      (await h.store.list<VirtualNode>('VirtualNode')).items.length === 0 && (await h.store.list<Volume>('Volume')).items.length === 0, 300_000, 2000);
    for (const doms of (await h.domains()).values()) assert.deepEqual(doms, []);
    // LVM's dm names double a name's hyphens; ours (vlsnap-) do not
    const dmUid = uid.replace(/-/g, '--');
    for (const node of dom0.keys()) {
      const left = await sh(node, `dmsetup ls 2>/dev/null | grep -e "$1" -e "$2";
        lvs --config global/metadata_read_only=1 --noheadings -o lv_name vlsan 2>/dev/null | grep -e "$1";
        grep -e "$1" -e "/default/$3" /proc/self/mounts;
        [ ! -f /var/lib/nfs/etab ] || grep -e "/default/$3" /var/lib/nfs/etab; true`, uid, dmUid, VC);
      assert.equal(left.trim(), '', `${node} still has: ${left}`);
    }
    const vcsDir = join(h.testbed.sanDir, 'vcs');
    const files = existsSync(vcsDir) ? readdirSync(vcsDir, { recursive: true }) : [];
    assert.deepEqual(files.filter((f) => !String(f).match(/^[^/]+$/)), [], `files left under ${vcsDir}`);
  });
});
