// A VC's shared volume as OCFS2 on the SAN disk, mounted on the nodes that run the VC's VMs and
// re-exported from each of them over the kernel NFS server (SharedFsDriver in types.ts; paper,
// section 4.2; docs/adr/0007-ocfs2-on-full-nodes.md).
//
// - The volume is a linear LV `<vc uid>_<volume name>` of the SAN volume group (the VG the evms
//   and lvm drivers use, `vlsan`; drivers/storage/lvm-volumes.ts), made and removed only by the
//   storage node (ADR 0006's one-writer rule); other nodes map it with read-only metadata.
// - It is formatted `mkfs.ocfs2 -N <slots> --cluster-stack=o2cb --cluster-name=<cluster>` with
//   local heartbeat: the nodes that mount it heartbeat on it, so the volume's o2cb membership is
//   exactly the nodes that have it mounted. Every node that mounts it must first be online in the
//   o2cb cluster (o2cb.ts: one cluster of all the full nodes, since a node is in one o2cb cluster
//   at a time), and so must the storage node when it formats the volume.
// - Mounted at `<mountRoot>/<namespace>/<vc>` (default /vc/<ns>/<vc>: the path guests already
//   mount from ganesha on namespace nodes), exported with fsid = a UUID derived from the VC's uid,
//   the same on every node.

import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { VolumeGroup } from '../storage/lvm-volumes.js';
import { run } from '../storage/file-volumes.js';
import { StorageError } from '../storage/types.js';
import { knfsdExport, knfsdExports, knfsdUnexport } from '../nfs/kernel-nfs.js';
import type { Transport } from '../transport/types.js';
import type { SharedFsDriver, SharedVolumeRef, SharedVolumeState } from './types.js';

export interface Ocfs2SharedFsOptions {
  /** The SAN volume group; default `vlsan`. */
  vg?: string;
  /** The SAN disk the VG is made on when it does not exist yet (an empty disk only). */
  sanDevice?: string;
  /** The o2cb cluster the volumes are formatted for. */
  cluster: string;
  /** Default `/vc`. */
  mountRoot?: string;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const UID = /^[A-Za-z0-9-]{1,64}$/;

function check(v: SharedVolumeRef): void {
  for (const k of ['namespace', 'vc', 'name'] as const) {
    if (!DNS_LABEL.test(v[k])) throw new StorageError(`shared volume: ${k} ${JSON.stringify(v[k])} is not a DNS-1123 label`);
  }
  if (!UID.test(v.vcUid)) throw new StorageError(`shared volume ${v.namespace}/${v.vc}: vcUid ${JSON.stringify(v.vcUid)} must be letters, digits and -`);
}

/** The NFS fsid of a VC's shared volume: a UUID derived from its uid (the same on every node). */
export function sharedFsid(vcUid: string): string {
  const h = createHash('sha256').update(`virtualinux shared volume ${vcUid}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// $1 device, $2 vg/lv, $3 mount point, $4 cluster. Exit 3: refused.
const MOUNT_SCRIPT = String.raw`
set -e
dev="$1"; lv="$2"; mp="$3"; c="$4"
[ -e /etc/mtab ] || ln -s ../proc/self/mounts /etc/mtab
[ "$(cat "/sys/kernel/config/cluster/$c/node/$(hostname)/local" 2>/dev/null)" = 1 ] || { echo "$(hostname) is not online in o2cb cluster $c: bring it online first" >&2; exit 3; }
lvchange --config global/metadata_read_only=1 -ay "$lv"
mkdir -p "$mp"
if mountpoint -q "$mp"; then
  [ "$(mountpoint -d "$mp")" = "$(mountpoint -x "$dev")" ] || { echo "$mp has another filesystem mounted" >&2; exit 3; }
else
  mount -t ocfs2 -o _netdev "$dev" "$mp"
fi
`;

// $1 device, $2 vg/lv, $3 mount point.
const UNMOUNT_SCRIPT = String.raw`
set -e
dev="$1"; lv="$2"; mp="$3"
if mountpoint -q "$mp"; then
  if [ -b "$dev" ] && [ "$(mountpoint -d "$mp")" = "$(mountpoint -x "$dev")" ]; then umount "$mp"; else echo "$mp has another filesystem mounted" >&2; exit 3; fi
fi
[ ! -d "$mp" ] || rmdir "$mp"
if lvs "$lv" >/dev/null 2>&1; then lvchange --config global/metadata_read_only=1 -an "$lv"; fi
`;

// $1 vg/lv, $2 device. Prints the nodes that have it mounted (from the slot map on the disk).
const MOUNTED_BY_SCRIPT = String.raw`
set -e
[ -e /etc/mtab ] || ln -s ../proc/self/mounts /etc/mtab
was=0; [ ! -b "$2" ] || was=1
[ $was = 1 ] || lvchange -ay "$1"
out=$(mounted.ocfs2 -f "$2" | tail -n +2)
[ $was = 1 ] || lvchange -an "$1"
echo "$out"
`;

export class Ocfs2SharedFs implements SharedFsDriver {
  readonly vg: VolumeGroup;
  private readonly mountRoot: string;

  /** `transport`: the storage node (the one LVM metadata writer). */
  constructor(readonly transport: Transport, private readonly opts: Ocfs2SharedFsOptions) {
    this.vg = new VolumeGroup(transport, opts.vg ?? 'vlsan');
    this.mountRoot = opts.mountRoot ?? '/vc';
    if (!/^\/[A-Za-z0-9._/-]*$/.test(this.mountRoot)) throw new StorageError(`mountRoot ${JSON.stringify(this.mountRoot)} must be an absolute path`);
    if (!/^[A-Za-z0-9]{1,16}$/.test(opts.cluster)) throw new StorageError(`o2cb cluster name ${JSON.stringify(opts.cluster)} must be 1-16 letters and digits`);
  }

  lvName(v: SharedVolumeRef): string {
    check(v);
    return `${v.vcUid}_${v.name}`;
  }

  mountPoint(v: SharedVolumeRef): string {
    check(v);
    return posix.join(this.mountRoot, v.namespace, v.vc);
  }

  /**
   * The volume mounted at `mountPoint` from LV `lv` (as readSharedFsNode reports a mount), or
   * undefined when the two are not one of ours (another path, another LV name). Pure.
   */
  refOf(mountPoint: string, lv: string | undefined): SharedVolumeRef | undefined {
    const rel = posix.relative(this.mountRoot, mountPoint).split('/');
    const m = lv !== undefined ? /^([A-Za-z0-9-]{1,64})_(.+)$/.exec(lv) : null;
    if (rel.length !== 2 || !m) return undefined;
    const v = { namespace: rel[0]!, vc: rel[1]!, vcUid: m[1]!, name: m[2]! };
    try {
      check(v);
    } catch {
      return undefined;
    }
    return v.name === `${v.vc}-shared` ? v : undefined;
  }

  /** Whether the volume exists on the SAN (one `lvs` on the storage node). */
  async exists(v: SharedVolumeRef): Promise<boolean> {
    return (await this.vg.lv(this.lvName(v))) !== undefined;
  }

  async create(v: SharedVolumeRef, sizeBytes: number, slots: number): Promise<void> {
    const lv = this.lvName(v);
    if (!Number.isInteger(slots) || slots < 1 || slots > 255) throw new StorageError(`shared volume ${v.namespace}/${v.vc}: slots ${slots} must be an integer from 1 to 255`);
    if (!Number.isInteger(sizeBytes) || sizeBytes < 64 * 1048576) throw new StorageError(`shared volume ${v.namespace}/${v.vc}: size ${sizeBytes} must be at least 64 MiB`);
    const t = this.transport;
    await this.vg.ensure(this.opts.sanDevice);
    if (await this.vg.lv(lv)) return;
    const tmp = `${lv}.tmp`;
    await this.vg.buildLv(lv, tmp, async () => {
      await run(t, 'create shared volume', ['lvcreate', '-y', '-Wy', '-Zy', '-L', `${sizeBytes}b`, '-n', tmp, this.vg.vg]);
      await run(t, 'format shared volume (OCFS2)', [
        'sh', '-c', '[ -e /etc/mtab ] || ln -s ../proc/self/mounts /etc/mtab; exec "$@"', 'sh',
        'mkfs.ocfs2', '-q', '-F', '-b', '4K', '-C', '4K', '-N', String(slots), '-T', 'vmstore', '-L', v.name,
        '--cluster-stack=o2cb', `--cluster-name=${this.opts.cluster}`, this.vg.dev(tmp),
      ]);
      await run(t, 'deactivate shared volume', ['lvchange', '-an', `${this.vg.vg}/${tmp}`]);
    });
  }

  /** The nodes that have the volume mounted, as OCFS2's slot map on the disk says. */
  async mountedBy(v: SharedVolumeRef): Promise<string[]> {
    const lv = this.lvName(v);
    if (!(await this.vg.lv(lv))) return [];
    const out = await run(this.transport, 'read the shared volume\'s slot map', ['sh', '-c', MOUNTED_BY_SCRIPT, 'sh', `${this.vg.vg}/${lv}`, this.vg.dev(lv)]);
    // "<device> <stack> <cluster> [G] <node>, <node>" (G: global heartbeat, never ours), or "... Not mounted"
    const line = out.trim();
    if (!line || /Not mounted/.test(line)) return [];
    const rest = line.split(/\s+/).slice(3);
    if (rest[0] === 'G') rest.shift();
    return rest.join(' ').split(',').map((s) => s.trim()).filter(Boolean);
  }

  async remove(v: SharedVolumeRef): Promise<void> {
    const lv = this.lvName(v);
    if (!(await this.vg.lv(lv))) return;
    const by = await this.mountedBy(v);
    if (by.length) throw new StorageError(`shared volume ${v.namespace}/${v.vc} is mounted on ${by.join(', ')}: unmount it there first`);
    await this.vg.removeLv(lv);
  }

  async mount(v: SharedVolumeRef, node: Transport): Promise<string> {
    const lv = this.lvName(v);
    const mp = this.mountPoint(v);
    await run(node, `mount shared volume ${v.namespace}/${v.vc}`, ['sh', '-c', MOUNT_SCRIPT, 'sh', this.vg.dev(lv), `${this.vg.vg}/${lv}`, mp, this.opts.cluster]);
    return mp;
  }

  async unmount(v: SharedVolumeRef, node: Transport): Promise<void> {
    const lv = this.lvName(v);
    const mp = this.mountPoint(v);
    await knfsdUnexport(node, mp);
    await run(node, `unmount shared volume ${v.namespace}/${v.vc}`, ['sh', '-c', UNMOUNT_SCRIPT, 'sh', this.vg.dev(lv), `${this.vg.vg}/${lv}`, mp]);
  }

  export(v: SharedVolumeRef, node: Transport, clients: string): Promise<void> {
    return knfsdExport(node, { path: this.mountPoint(v), clients, fsid: sharedFsid(v.vcUid) });
  }

  unexport(v: SharedVolumeRef, node: Transport): Promise<void> {
    return knfsdUnexport(node, this.mountPoint(v));
  }

  async state(v: SharedVolumeRef, node: Transport): Promise<SharedVolumeState> {
    const lv = this.lvName(v);
    const mp = this.mountPoint(v);
    const [m, nfs] = await Promise.all([
      node.exec(['sh', '-c', 'mountpoint -q "$1" && [ -b "$2" ] && [ "$(mountpoint -d "$1")" = "$(mountpoint -x "$2")" ]', 'sh', mp, this.vg.dev(lv)]),
      knfsdExports(node),
    ]);
    return { mounted: m.code === 0, exportedTo: nfs.exports.filter((e) => e.path === mp).map((e) => e.clients) };
  }
}
