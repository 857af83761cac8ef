// What one physical node has of the VCs' shared filesystems, read in ONE command (the network
// controller reads it on every pass over a full node, so it must stay one SSH round trip): the o2cb
// cluster it is registered in and its members, its OCFS2 mounts (which VC volume is mounted where),
// and its kernel NFS exports.
//
// Contract: readSharedFsNode(t) never changes anything on the node. A mount whose device is not an
// LV of the SAN volume group named `<vc uid>_<volume>` (ocfs2-shared-fs.ts) is reported with
// `lv: undefined` (not ours: the controllers leave it alone).

import { posix } from 'node:path';
import { KNFSD_STATE_SCRIPT, parseKnfsdState, type KernelNfsState } from '../nfs/kernel-nfs.js';
import type { Transport } from '../transport/types.js';
import { O2cbError } from './o2cb.js';

export interface SharedFsNodeState {
  /** The o2cb cluster the node is registered in (undefined: o2cb offline). */
  cluster?: string;
  /** The member names of that cluster, sorted. */
  members: string[];
  /** Every OCFS2 mount: where, and the SAN LV name when the device is one of `vg`. */
  mounts: { mountPoint: string; lv?: string }[];
  nfs: KernelNfsState;
}

const SCRIPT = String.raw`
for d in /sys/kernel/config/cluster/*; do
  [ -d "$d" ] || continue
  echo "cluster $(basename "$d")"
  for n in "$d"/node/*; do [ -d "$n" ] && echo "member $(basename "$n")"; done
done
awk '$3 == "ocfs2" { print "ocfs2", $2, $1 }' /proc/self/mounts
` + KNFSD_STATE_SCRIPT;

/** The LV name of a device path of VG `vg` (`/dev/<vg>/<lv>` or `/dev/mapper/<vg>-<lv>` with `-` doubled). Pure. */
export function lvOfDevice(device: string, vg: string): string | undefined {
  if (posix.dirname(device) === `/dev/${vg}`) return posix.basename(device);
  const m = /^\/dev\/mapper\/((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(device);
  if (!m || m[1]!.replace(/--/g, '-') !== vg) return undefined;
  return m[2]!.replace(/--/g, '-');
}

/** Undoes the octal escapes of /proc/self/mounts (`\040` for a space). Pure. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Reads what readSharedFsNode's command printed. Pure. */
export function parseSharedFsNode(out: string, vg: string): SharedFsNodeState {
  const s: SharedFsNodeState = { members: [], mounts: [], nfs: parseKnfsdState(out) };
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'cluster') s.cluster = f[1];
    else if (f[0] === 'member' && f[1]) s.members.push(f[1]);
    else if (f[0] === 'ocfs2' && f[1] && f[2]) {
      const lv = lvOfDevice(unescapeMount(f[2]), vg);
      s.mounts.push({ mountPoint: unescapeMount(f[1]), ...(lv !== undefined ? { lv } : {}) });
    }
  }
  s.members.sort();
  return s;
}

export async function readSharedFsNode(t: Transport, vg = 'vlsan'): Promise<SharedFsNodeState> {
  const r = await t.exec(['sh', '-c', SCRIPT], { timeoutMs: 180_000 });
  if (r.code !== 0) throw new O2cbError(`${t.host}: read the shared filesystem state: ${(r.stderr.trim() || `exited ${r.code}`).slice(0, 2000)}`);
  return parseSharedFsNode(r.stdout, vg);
}
