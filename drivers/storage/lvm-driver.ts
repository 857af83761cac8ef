// LvmDriver: LVM2 thin snapshots on the SAN disk, the modern successor of the paper's EVMS
// snapshots, with the paper's per-node activation (section 3.2; ADR 0006, "lvm thin across nodes").
//
// A thin pool's metadata is written by the kernel of the node that has the pool active, so one
// pool can serve one node only. Hence one small pool per VM snapshot, and the original outside any
// pool:
// - original `<uid>_<name>`: a linear LV filled with the template and set read-only (as evms makes
//   it, SanVolumes): every node may map it read-only, none can write it.
// - snapshot `<uid>_<name>`: a thin snapshot with that *external origin*
//   (`lvcreate -s --thinpool <vg>/<uid>_<name>.pool <vg>/<original>`) in its own pool
//   `<uid>_<name>.pool`, whose data LV is as large as the original (every block of the original
//   may be overwritten once: the pool never fills; no autoextend, which dmeventd would do from the
//   VM's node). Activating it (`lvchange -ay -K` with read-only metadata) maps the pool and the
//   original's read-only layer on that node only; the blocks the VM wrote are on the SAN, in the
//   pool, and read at activation: activation never resets a snapshot.
// - reset (a template revision): a new thin snapshot of the original in the same pool (a bigger
//   pool when the original grew), made and swapped in on the storage node while the snapshot is
//   active nowhere else.
// - swap: a linear LV with mkswap (SanVolumes). Config and shared volumes: files in the VC directory.
// - where each snapshot is active: the record `.<name>.active` in the VC directory (SanVolumes).
//
// Metadata changes (lvcreate, lvremove, lvrename, lvchange -p) run on the driver's node only,
// and make nothing active there: nothing stays mapped on the storage node after a create. Other nodes only activate and deactivate, with read-only metadata (lvm-volumes.ts).
// Tested on full nodes (test/storage/san-drivers.full.test.ts) and against recorded argument
// vectors (lvm-driver.recorded.test.ts).

import type { Transport } from '../transport/types.js';
import { pathsUsage, run } from './file-volumes.js';
import { LVM_CONFIG, LVM_CONFIG_READ_ONLY, lvm } from './lvm-config.js';
import { LV_READ_FUNCTIONS, runActivation, SanVolumes, VolumeGroup, type LvRow } from './lvm-volumes.js';
import type { NodeActivation, StorageDriver, VolumeInfo, VolumeKey } from './types.js';

export interface LvmDriverOptions {
  /** The volume group on the SAN disk. */
  vg: string;
  /**
   * Not used any more: each snapshot has its own pool (`<snapshot LV>.pool`, ADR 0006). Accepted
   * so that an existing `--lvm-thin-pool` setting still parses.
   */
  thinPool?: string;
  /** When set and the VG is absent, it is made on this (empty) SAN disk. */
  sanDevice?: string;
}

/** The pool names a snapshot LV's pool may have: a reset into a bigger pool takes the other one. */
export function poolNames(lv: string): [string, string] {
  return [`${lv}.pool`, `${lv}.pool2`];
}

/**
 * Bytes of pool data in use, read from each pool's metadata superblock on the SAN (the data space
 * map's allocated blocks x the block size), one number per line (0 for a pool without one).
 * Args: vg pool... The superblock is the first block of the pool's hidden `<pool>_tmeta` LV, read
 * straight from the physical volume (LV_READ_FUNCTIONS): nothing is mapped, so the read never
 * collides with an activation of the pool on this node (LVM refuses `lvchange -ay -K` while a
 * component of the pool is mapped on its own, which the read did before) and needs no LVM command
 * per pool. While a node has the pool active it is the last commit (dm-thin commits at least every
 * second).
 */
const POOL_USAGE_SCRIPT = `${LV_READ_FUNCTIONS}
vg=$1; shift
lv_segments || exit 1
for pool in "$@"; do
  words=$(lv_read "\${pool}_tmeta" 0 4096 | od -An -tu4 -v -w4 | sed -n '9p;19p;20p;85p' | tr '\n' ' ')
  set -- $words
  # magic 27022010 at byte 32; allocated data blocks (le64) at 72; data block size (sectors) at 336
  if [ "$1" = 27022010 ]; then echo $((($2 + $3 * 4294967296) * $4 * 512)); else echo 0; fi
done
`;

export class LvmDriver extends SanVolumes implements StorageDriver, NodeActivation {
  readonly name = 'lvm' as const;
  readonly activation: NodeActivation = this;

  constructor(transport: Transport, opts: LvmDriverOptions) {
    super(transport, new VolumeGroup(transport, opts.vg), opts.sanDevice);
  }

  pathOf(key: VolumeKey): string {
    return this.vg.dev(this.lvName(key));
  }

  /** A thin snapshot's own mapping, a linear table over LVM's thin LV: the VM's disk, whose table a live migration can swap. */
  dmName(key: VolumeKey): string {
    return `vlthin-${this.lvName(key)}`;
  }
  /** An external-origin thin LV has its origin's size; at a handover the source unmaps it (and so its pool) before the target maps it. */
  protected readonly incomingSizeMode = 'lv' as const;
  protected readonly releaseLv = true;

  /**
   * Makes thin snapshot `lv` of `origin` in `pool`, and `pool` first when `makePool` (for an
   * original of the origin's size), in one command on the node (SNAPSHOT_SCRIPT); `dir`: the VC's
   * directory, made there too. LVM refuses an external origin mapped on this node (its own
   * mapping, not the read-only layer a snapshot maps under it), so a mapping of the original here
   * (a read of it) is removed first; one in use fails with LVM's reason.
   */
  private async makeThin(lv: string, pool: string, origin: LvRow, makePool: boolean, dir: string): Promise<void> {
    if (origin.lv_attr[4] === 'a') await run(this.transport, 'unmap the original here', lvm('lvchange', '-an', `${this.vg.vg}/${origin.lv_name}`));
    await run(this.transport, 'create thin snapshot', ['sh', '-c', LVM_SCRIPTS.snapshot, 'sh', ...this.snapshotArgs(lv, pool, origin, makePool, dir)]);
  }

  /** The arguments of SNAPSHOT_SCRIPT (hack/bench/storage-san.ts times the script with them). */
  snapshotArgs(lv: string, pool: string, origin: Pick<LvRow, 'lv_name' | 'lv_size'>, makePool: boolean, dir: string): string[] {
    return [this.vg.vg, pool, lv, origin.lv_name, origin.lv_size, makePool ? '1' : '0', dir];
  }

  snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    return this.snapshotAll(original, [key]).then((r) => r[0]!);
  }

  /**
   * One `lvs` for the batch; per missing snapshot one command on the node: its pool (unless a
   * crash left it) and the thin snapshot, made under its final name (one `lvcreate`, atomic: no
   * temporary to rename).
   */
  async snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    await this.snapshotEach(original, keys, async (key, final, origin, lvs) => {
      const [pool] = poolNames(final);
      // a pool left by a crash before the snapshot was in place is used again
      await this.makeThin(final, pool, origin, !lvs.has(pool), key.vcDir);
    });
    return keys.map((k) => ({ path: this.dmPath(k), format: 'raw' as const }));
  }

  /**
   * A fresh thin snapshot of the current original, in the snapshot's pool (a new pool when the
   * original outgrew it), complete before the old one goes. Refused while active on another node.
   */
  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const final = this.lvName(key);
    const row = await this.vg.lv(final);
    if (!row) return this.snapshot(original, key);
    await this.releaseHere(key, 'reset');
    const origin = await this.originRow(original);
    const old = row.pool_lv;
    const oldPool = old ? await this.vg.lv(old) : undefined;
    let pool = old;
    const newPool = !oldPool || Number(oldPool.lv_size) < Number(origin.lv_size);
    if (newPool) {
      pool = poolNames(final).find((p) => p !== old)!;
      await this.vg.removeLv(pool);
    }
    const tmp = `${final}.tmp`;
    await this.vg.removeLv(tmp);
    await this.makeThin(tmp, pool, origin, newPool, key.vcDir);
    await this.vg.removeLv(final);
    if (old && old !== pool) await this.vg.removeLv(old);
    await this.vg.rename(tmp, final);
    return { path: this.dmPath(key), format: 'raw' };
  }

  /** A thin snapshot has a pool. */
  protected isSnapshot(row: LvRow): boolean {
    return !!row.pool_lv;
  }

  /** Its pools (a reset into a bigger pool takes the other name). */
  protected override ownedLvs(lv: string): string[] {
    return poolNames(lv);
  }

  /** Snapshots: the pool blocks they use (read from the SAN). Other LVs: their size. Files: allocated bytes. */
  async usage(key: VolumeKey): Promise<number> {
    return (await this.usageAll([key]))[0]!;
  }

  /** One `lvs`, one read of the snapshots' pool superblocks, one du of the files. */
  async usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    const lvs = await this.vg.all();
    const pools = keys.map((k) => lvs.get(this.lvName(k))?.pool_lv).filter((p): p is string => !!p);
    const used = new Map<string, number>();
    if (pools.length > 0) {
      const out = await run(this.transport, 'read snapshot pools', ['sh', '-c', LVM_SCRIPTS.poolUsage, 'sh', this.vg.vg, ...pools]);
      out.trim().split('\n').forEach((n, i) => used.set(pools[i]!, Number(n)));
    }
    const fileKeys = keys.filter((k) => !lvs.has(this.lvName(k)));
    const files = await pathsUsage(this.transport, fileKeys.map((k) => this.filePath(k)));
    return keys.map((k) => {
      const row: LvRow | undefined = lvs.get(this.lvName(k));
      if (!row) return files[fileKeys.indexOf(k)]!;
      return row.pool_lv ? (used.get(row.pool_lv) ?? 0) : Number(row.lv_size);
    });
  }

  // --- NodeActivation -------------------------------------------------------------------------

  async activate(key: VolumeKey, on: Transport, opts: { takeOver?: boolean } = {}): Promise<VolumeInfo> {
    const lv = this.lvName(key);
    return runActivation(on, key, `${this.vg.vg}/${lv}`, LVM_SCRIPTS.activate, [this.vg.vg, lv, this.dmName(key), this.recordPath(key), on.host, opts.takeOver ? '1' : '0']);
  }

  async deactivate(key: VolumeKey, on: Transport): Promise<void> {
    await run(on, `deactivate ${key.name}`, ['sh', '-c', LVM_SCRIPTS.deactivate, 'sh', this.vg.vg, this.lvName(key), this.dmName(key), this.recordPath(key), on.host]);
  }
}

const RO = LVM_CONFIG_READ_ONLY;

/**
 * Maps a volume here, with read-only metadata. Args: vg lv dm-name record-path this-node take-over(0|1).
 * A thin snapshot (it has a pool): refused with exit 4 when the record names another node
 * (without take-over); `-K` maps its pool and the original's read-only layer too, and the
 * snapshot's own device `dm-name` gets a linear table over the thin LV (loaded into the device an
 * incoming migration made, or created); the record then names this node; prints that device.
 * Other LVs (original, swap): mapped, no record; prints LVM's device. Exit 3: no such LV.
 */
const ACTIVATE_SCRIPT = `
vg=$1 lv=$2 dm=$3 rec=$4 me=$5 take=$6
ro="${RO}"
dev=/dev/$vg/$lv
# mapped here (a linear table, not an incoming device's error table) and recorded so: nothing to do
case "$(dmsetup table "$dm" 2>/dev/null)" in
  *" linear "*) [ -b "$dev" ] && [ "$(cat "$rec" 2>/dev/null)" = "$me" ] && { echo "/dev/mapper/$dm"; exit 0; } ;;
esac
pool=$(lvs --noheadings -o pool_lv --config "$ro" "$vg/$lv" 2>/dev/null) || { echo "$vg/$lv does not exist" >&2; exit 3; }
pool=$(echo $pool)
if [ -z "$pool" ]; then
  lvchange -ay --config "$ro" "$vg/$lv" || exit 1
  echo "$dev"; exit 0
fi
holder=$(cat "$rec" 2>/dev/null)
if [ -n "$holder" ] && [ "$holder" != "$me" ] && [ "$take" != 1 ]; then echo "it is active on $holder" >&2; exit 4; fi
# LVM refuses while a component of the pool (its _tmeta or _tdata) is mapped on its own here: a
# read of it by hand, or by an older usage read, which mapped _tmeta for a moment. Such a mapping
# is read-only and holds nothing: wait a little, then unmap it and try again.
try=1
until [ -b "$dev" ] || out=$(lvchange -ay -K --config "$ro" "$vg/$lv" 2>&1); do
  case "$out" in *"prohibited while"*_t*" is active"*) ;; *) echo "$out" >&2; exit 1 ;; esac
  [ $try -lt 4 ] || { echo "$out" >&2; exit 1; }
  sleep $try
  [ $try -lt 2 ] || lvchange -an --config "$ro" "$vg/\${pool}_tmeta" "$vg/\${pool}_tdata" >/dev/null 2>&1
  try=$((try + 1))
done
case "$(dmsetup table "$dm" 2>/dev/null)" in
  *" linear "*) ;;
  *)
    size=$(blockdev --getsz "$dev") || exit 1
    table="0 $size linear $dev 0"
    if dmsetup info "$dm" >/dev/null 2>&1; then
      # an incoming device (prepareIncoming): the linear table replaces its error table
      dmsetup load "$dm" --table "$table" && dmsetup resume "$dm" || exit 1
    elif ! dmsetup create "$dm" --table "$table"; then
      lvchange -an --config "$ro" "$vg/$lv"; exit 1
    fi ;;
esac
mkdir -p "\${rec%/*}" && echo "$me" > "$rec.tmp" && mv -f "$rec.tmp" "$rec" || exit 1
echo "/dev/mapper/$dm"
`;

/**
 * Unmaps a volume here: the snapshot's own device first, then LVM's LV (a thin snapshot's pool
 * and the original's layer go with it when nothing else here uses them; its blocks are on the
 * SAN); clears the record when it names this node. Args: vg lv dm-name record-path this-node.
 * Not mapped here: only the record.
 */
const DEACTIVATE_SCRIPT = `
vg=$1 lv=$2 dm=$3 rec=$4 me=$5
ro="${RO}"
if dmsetup info "$dm" >/dev/null 2>&1; then dmsetup remove --retry "$dm" || exit 1; fi
if [ -b "/dev/$vg/$lv" ]; then lvchange -an --config "$ro" "$vg/$lv" || exit 1; fi
[ "$(cat "$rec" 2>/dev/null)" = "$me" ] && rm -f "$rec"
exit 0
`;

/**
 * Makes a thin snapshot on the storage node, inactive. Args: vg pool lv origin pool-bytes
 * make-pool(0|1) dir. With make-pool, first the pool (data LV as large as the original, inactive).
 * Both commands are `-an`: LVM maps the pool only for the moment of the command, and leaving them
 * mapped then unmapping cost seconds per command in a TCG node. The snapshot's `lvcreate` skips
 * thin_check when the pool was made by the command before it (an empty pool: nothing to check; the
 * check is a process run on the pool's metadata at each activation); a pool a crash left, or a
 * reset's pool, is checked as LVM does by default.
 */
const SNAPSHOT_SCRIPT = `
vg=$1 pool=$2 lv=$3 origin=$4 bytes=$5 mkpool=$6 dir=$7
c="${LVM_CONFIG}"
mkdir -p "$dir" || exit 1
if [ "$mkpool" = 1 ]; then
  lvcreate --config "$c" -y -an --type thin-pool -L "\${bytes}b" -n "$pool" "$vg" >/dev/null || exit 1
  c="$c global/thin_check_executable=\\"\\""
fi
lvcreate --config "$c" -y -an -s --thinpool "$vg/$pool" -n "$lv" "$vg/$origin" >/dev/null
`;

/** The scripts the driver runs on a node (the recorded test's model answers them by their contract). */
export const LVM_SCRIPTS = { activate: ACTIVATE_SCRIPT, deactivate: DEACTIVATE_SCRIPT, poolUsage: POOL_USAGE_SCRIPT, snapshot: SNAPSHOT_SCRIPT };
