// EvmsDriver: the paper's EVMS snapshots (sections 3.1, 3.2) rebuilt on what EVMS itself used,
// device-mapper, on the SAN disk. EVMS is gone (last release 2006); its snapshots were dm
// `snapshot` targets over a persistent exception store, which is what this driver makes with
// dmsetup. LVM2 only carves the disk (linear LVs of one VG, as EVMS's segment and region managers
// did); its own snapshots are not used (LVM activates a classic snapshot together with its origin
// and every other snapshot of it: the all-nodes activation the paper set out to avoid).
//
// Volumes (docs/adr/0006-san-block-storage.md maps each EVMS operation to these):
// - original `<uid>_<name>`: a linear LV filled with the template, then read-only (`lvchange -p r`:
//   its dm table is read-only on every node that maps it). No snapshot-origin target is ever
//   loaded over it, so nothing can write it: no snapshot can lose its alignment with it.
// - snapshot `<uid>_<name>`: a linear LV holding the persistent exception store (the COW), sized
//   for the whole original (it never fills up), tagged `vl.origin=<original LV>`. Creating it
//   zeroes its header (on the physical volume, nothing mapped: SNAPSHOT_SCRIPT): a fresh
//   snapshot. It is mapped (activated) only on the node that runs its
//   VM: `dmsetup create vlsnap-<uid>_<name>` with table `snapshot <original> <cow> P <chunk>`;
//   the kernel reads the exceptions from the SAN at that moment (the state lives on the SAN, not
//   on the node). Deactivation (`dmsetup remove`) commits and unmaps, and never marks a reset:
//   that is the VirtuaLinux extension, safe because the original is never written.
// - reset (a template revision): the snapshot's header is zeroed (on the PV), so its next
//   activation starts a fresh exception store over the new original.
// - swap: a linear LV with mkswap. Config and shared volumes: files in the VC directory, as lvm.
// - where each snapshot is active: a record file `.<name>.active` in the VC directory on the
//   shared storage root, naming the node (see NodeActivation in types.ts).
//
// Metadata changes run on the driver's node only; other nodes activate with read-only metadata
// (lvm-volumes.ts). Nothing is active after a create: activation is the caller's (the node of the VM).

import type { Transport } from '../transport/types.js';
import { pathsUsage, run } from './file-volumes.js';
import { LVM_CONFIG, LVM_CONFIG_READ_ONLY, lvm } from './lvm-config.js';
import { LV_READ_FUNCTIONS, ORIGIN_SED, ORIGIN_TAG, runActivation, SanVolumes, VolumeGroup, type LvRow } from './lvm-volumes.js';
import type { NodeActivation, StorageDriver, VolumeInfo, VolumeKey } from './types.js';
import { StorageError } from './types.js';

export interface EvmsDriverOptions {
  /** The volume group on the SAN disk; default `vlsan`. */
  vg?: string;
  /** The SAN block device the VG is made on when it does not exist yet (an empty disk only). */
  sanDevice?: string;
  /** Exception store chunk in 512-byte sectors (a power of two); default 128 (64 KiB). */
  chunkSectors?: number;
}

export const DEFAULT_SAN_VG = 'vlsan';
/** The persistent exception store's header magic ("SnAp", little-endian u32). */
const SNAP_MAGIC = 0x70416e53;

/**
 * Bytes of the exception store in use, read from the SAN for each LV given (the COW LVs of
 * snapshots), one number per line: header + metadata areas + data chunks. Read straight from the
 * physical volume (LV_READ_FUNCTIONS): nothing is mapped (mapping each store for the read cost two
 * LVM commands per snapshot, and its unmapping could take the store away from under an activation
 * on the same node), one `pvs` for all.
 */
const COW_USAGE_SCRIPT = `${LV_READ_FUNCTIONS}
vg=$1; shift
lv_segments || exit 1
for lv in "$@"; do
  set -- $(lv_read "$lv" 0 4096 | od -An -tu4 -N16)
  bytes=0
  if [ "$1" = ${SNAP_MAGIC} ]; then
    cb=$(($4 * 512)); epa=$((cb / 16)); i=0; n=0
    while :; do
      c=$(lv_read "$lv" $(((1 + i * (epa + 1)) * cb)) $cb | od -An -tu8 -w16 -v | awk '$2 != 0 { c++ } END { print c + 0 }')
      n=$((n + c)); i=$((i + 1))
      [ "$c" -lt "$epa" ] && break
    done
    bytes=$(((1 + i + n) * cb))
  fi
  echo "$bytes"
done
`;

export class EvmsDriver extends SanVolumes implements StorageDriver, NodeActivation {
  readonly name = 'evms' as const;
  readonly chunkSectors: number;
  readonly activation: NodeActivation = this;

  constructor(transport: Transport, opts: EvmsDriverOptions = {}) {
    super(transport, new VolumeGroup(transport, opts.vg ?? DEFAULT_SAN_VG), opts.sanDevice);
    this.chunkSectors = opts.chunkSectors ?? 128;
    if (!Number.isInteger(this.chunkSectors) || this.chunkSectors < 8 || (this.chunkSectors & (this.chunkSectors - 1)) !== 0) {
      throw new StorageError(`evms: chunkSectors must be a power of two of at least 8, got ${opts.chunkSectors}`);
    }
  }

  /** The device-mapper name of a snapshot's mapping. */
  dmName(key: VolumeKey): string {
    return `vlsnap-${this.lvName(key)}`;
  }
  /** An incoming device has the original's size (the LV is the exception store); the store stays mapped on the source until deactivate. */
  protected readonly incomingSizeMode = 'origin-tag' as const;
  protected readonly releaseLv = false;
  /** Where the volume lives: its LV (for a snapshot, the LV of its exception store). */
  pathOf(key: VolumeKey): string {
    return this.vg.dev(this.lvName(key));
  }

  /** A COW LV big enough for every chunk of an original of `bytes`: the snapshot never fills up. */
  private cowBytes(bytes: number): number {
    const chunk = this.chunkSectors * 512;
    const chunks = Math.ceil(bytes / chunk);
    const areas = Math.ceil(chunks / (chunk / 16));
    return (1 + areas + chunks) * chunk;
  }

  private static originOf(row: LvRow | undefined): string | undefined {
    return row?.lv_tags?.split(',').find((t) => t.startsWith(ORIGIN_TAG))?.slice(ORIGIN_TAG.length);
  }

  /**
   * Makes a fresh exception store for a snapshot of `origin` in one command on the node
   * (SNAPSHOT_SCRIPT): unmapped under `tmp`, its header zeroed on the physical volume, renamed to
   * `final` (none when `final` is `tmp`); `dir`: the VC's directory, made there too.
   */
  private async makeCow(tmp: string, final: string, origin: LvRow, dir: string): Promise<void> {
    await run(this.transport, 'create snapshot store', ['sh', '-c', EVMS_SCRIPTS.snapshot, 'sh', ...this.snapshotArgs(tmp, final, origin, dir)]);
  }

  /** The arguments of SNAPSHOT_SCRIPT (hack/bench/storage-san.ts times the script with them). */
  snapshotArgs(tmp: string, final: string, origin: Pick<LvRow, 'lv_name' | 'lv_size'>, dir: string): string[] {
    return [this.vg.vg, tmp, final, String(this.cowBytes(Number(origin.lv_size))), `${ORIGIN_TAG}${origin.lv_name}`, String(this.chunkSectors * 512), dir];
  }

  /** Zeroes the exception store's header and first metadata area: the next activation starts afresh. */
  private async zeroHeader(lv: string): Promise<void> {
    await run(this.transport, 'reset snapshot store', ['sh', '-c', ZERO_HEADER_SCRIPT, 'sh', this.vg.vg, lv, String(this.chunkSectors * 512)]);
  }

  snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    return this.snapshotAll(original, [key]).then((r) => r[0]!);
  }

  /**
   * One `lvs` for the batch; per missing snapshot one command on the node: a fresh exception
   * store, renamed into place (a leftover temporary of a crash removed first).
   */
  async snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    await this.snapshotEach(original, keys, (key, final, origin, lvs) =>
      this.vg.buildLv(final, `${final}.tmp`, () => this.makeCow(`${final}.tmp`, final, origin, key.vcDir), lvs, { renamedByBuild: true }));
    return keys.map((k) => ({ path: this.dmPath(k), format: 'raw' as const }));
  }

  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const final = this.lvName(key);
    const row = await this.vg.lv(final);
    if (!row) return this.snapshot(original, key);
    await this.releaseHere(key, 'reset');
    const origin = await this.originRow(original);
    if (EvmsDriver.originOf(row) !== origin.lv_name || Number(row.lv_size) < this.cowBytes(Number(origin.lv_size))) {
      // Another or a bigger original: a new store, built before the old one goes.
      const tmp = `${final}.tmp`;
      await this.vg.removeLv(tmp);
      await this.makeCow(tmp, tmp, origin, key.vcDir);
      await this.vg.removeLv(final);
      await this.vg.rename(tmp, final);
    } else {
      // on the physical volume: nothing is mapped here for it
      await this.zeroHeader(final);
    }
    return { path: this.dmPath(key), format: 'raw' };
  }

  /** A snapshot's store carries its origin's tag. */
  protected isSnapshot(row: LvRow): boolean {
    return !!EvmsDriver.originOf(row);
  }

  /** Snapshots: the exception store in use (read from the SAN). Other LVs: their size. Files: allocated bytes. */
  async usage(key: VolumeKey): Promise<number> {
    return (await this.usageAll([key]))[0]!;
  }

  /** One `lvs`, one walk of the snapshots' stores, one du of the files. */
  async usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    const lvs = await this.vg.all();
    const snaps = keys.map((k) => lvs.get(this.lvName(k))).filter((r): r is LvRow => !!EvmsDriver.originOf(r)).map((r) => r.lv_name);
    const used = new Map<string, number>();
    if (snaps.length > 0) {
      const out = await run(this.transport, 'read snapshot stores', ['sh', '-c', COW_USAGE_SCRIPT, 'sh', this.vg.vg, ...snaps]);
      out.trim().split('\n').forEach((n, i) => used.set(snaps[i]!, Number(n)));
    }
    const fileKeys = keys.filter((k) => !lvs.has(this.lvName(k)));
    const files = await pathsUsage(this.transport, fileKeys.map((k) => this.filePath(k)));
    return keys.map((k) => {
      const row = lvs.get(this.lvName(k));
      if (!row) return files[fileKeys.indexOf(k)]!;
      return used.get(row.lv_name) ?? Number(row.lv_size);
    });
  }

  // --- NodeActivation -------------------------------------------------------------------------

  async activate(key: VolumeKey, on: Transport, opts: { takeOver?: boolean } = {}): Promise<VolumeInfo> {
    const argv = [this.vg.vg, this.lvName(key), this.dmName(key), String(this.chunkSectors), this.recordPath(key), on.host, opts.takeOver ? '1' : '0'];
    return runActivation(on, key, `${this.vg.vg}/${this.lvName(key)}`, ACTIVATE_SCRIPT, argv);
  }

  async deactivate(key: VolumeKey, on: Transport): Promise<void> {
    await run(on, `deactivate ${key.name}`, ['sh', '-c', DEACTIVATE_SCRIPT, 'sh', this.vg.vg, this.lvName(key), this.dmName(key), this.recordPath(key), on.host]);
  }
}

// Activation and deactivation run as one script on the node each (every command is a round trip,
// and a process start costs much on a loaded node), with the names as arguments, never in the text.

/**
 * Maps a volume here. Args: vg lv dm-name chunk-sectors record-path this-node take-over(0|1).
 * Exits 3 when the LV does not exist, 4 when the record names another node (without take-over),
 * 5 when the snapshot is invalid; prints the device path.
 */
const ACTIVATE_SCRIPT = `
vg=$1 lv=$2 dm=$3 chunk=$4 rec=$5 me=$6 take=$7
ro="${LVM_CONFIG_READ_ONLY}"
# already mapped here (a snapshot table, not an incoming device's error table) and recorded so:
# nothing to do (no LVM command)
case "$(dmsetup table "$dm" 2>/dev/null)" in
  *" snapshot "*) [ "$(cat "$rec" 2>/dev/null)" = "$me" ] && { echo "/dev/mapper/$dm"; exit 0; } ;;
esac
tags=$(lvs --noheadings -o lv_tags --config "$ro" "$vg/$lv" 2>/dev/null) || { echo "$vg/$lv does not exist" >&2; exit 3; }
origin=$(echo "$tags" | tr ',' '\n' | sed -n '${ORIGIN_SED}')
if [ -z "$origin" ]; then
  lvchange -ay --config "$ro" "$vg/$lv" || exit 1
  echo "/dev/$vg/$lv"; exit 0
fi
holder=$(cat "$rec" 2>/dev/null)
if [ -n "$holder" ] && [ "$holder" != "$me" ] && [ "$take" != 1 ]; then echo "it is active on $holder" >&2; exit 4; fi
case "$(dmsetup table "$dm" 2>/dev/null)" in
  *" snapshot "*) ;;
  *)
    lvchange -ay --config "$ro" "$vg/$origin" "$vg/$lv" || exit 1
    size=$(blockdev --getsz "/dev/$vg/$origin") || exit 1
    table="0 $size snapshot /dev/$vg/$origin /dev/$vg/$lv P $chunk"
    if dmsetup info "$dm" >/dev/null 2>&1; then
      # an incoming device (prepareIncoming): the snapshot table replaces its error table
      dmsetup load "$dm" --table "$table" && dmsetup resume "$dm" || { lvchange -an --config "$ro" "$vg/$lv"; exit 1; }
    elif ! dmsetup create "$dm" --table "$table"; then
      lvchange -an --config "$ro" "$vg/$lv"; exit 1
    fi ;;
esac
st=$(dmsetup status "$dm") || exit 1
case "$st" in *Invalid*|*Overflow*) echo "the snapshot is invalid: $st" >&2; exit 5 ;; esac
mkdir -p "\${rec%/*}" && echo "$me" > "$rec.tmp" && mv -f "$rec.tmp" "$rec" || exit 1
echo "/dev/mapper/$dm"
`;

/**
 * Unmaps a volume here (its state is on the SAN) and clears the record when it names this node.
 * Args: vg lv dm-name record-path this-node. Not mapped here: nothing to do. The original stays
 * mapped while another snapshot of it here uses it.
 */
const DEACTIVATE_SCRIPT = `
vg=$1 lv=$2 dm=$3 rec=$4 me=$5
ro="${LVM_CONFIG_READ_ONLY}"
if dmsetup info "$dm" >/dev/null 2>&1; then dmsetup remove --retry "$dm" || exit 1; fi
tags=$(lvs --noheadings -o lv_tags,lv_active --config "$ro" "$vg/$lv" 2>/dev/null) || exit 0
origin=$(echo "$tags" | tr ', ' '\n\n' | sed -n '${ORIGIN_SED}')
case "$tags" in *active*) lvchange -an --config "$ro" "$vg/$lv" || exit 1 ;; esac
if [ -n "$origin" ]; then
  lvchange -an --config "$ro" "$vg/$origin" >/dev/null 2>&1
  [ "$(cat "$rec" 2>/dev/null)" = "$me" ] && rm -f "$rec"
fi
exit 0
`;

/**
 * Zeroes the first two chunks (the header and the first metadata area) of exception store LV
 * `lv` straight on the physical volume (LV_READ_FUNCTIONS locate it): nothing is mapped for it,
 * so it needs no activation and deactivation (seconds each in a TCG node). Args: vg lv chunk-bytes.
 */
const ZERO_HEADER_FUNCTION = `${LV_READ_FUNCTIONS}
zero_header() {
  lv_segments && w=$(lv_where "$1" 0) && [ -n "$w" ] || { echo "cannot find $vg/$1 on its physical volume" >&2; return 1; }
  dd if=/dev/zero of="\${w% *}" bs="$2" count=2 seek="\${w#* }" oflag=direct,seek_bytes conv=notrunc status=none
}
`;

const ZERO_HEADER_SCRIPT = `${ZERO_HEADER_FUNCTION}
vg=$1
zero_header "$2" "$3"
`;

/**
 * Makes a fresh exception store on the storage node, in one command. Args: vg tmp final bytes
 * tag chunk-bytes dir. The store LV is made unmapped (`-an`, metadata only, hence `-Zn -Wn`:
 * LVM zeroes only what it maps), its header zeroed on the physical volume, then renamed to its
 * final name: a store under its final name always has a fresh header (a crash before the rename
 * leaves only the temporary, which the next attempt removes). The kernel takes a store whose
 * header is zero for a new one and writes its header and first metadata area at the first
 * activation.
 */
const SNAPSHOT_SCRIPT = `${ZERO_HEADER_FUNCTION}
vg=$1 tmp=$2 final=$3 bytes=$4 tag=$5 cb=$6 dir=$7
c="${LVM_CONFIG}"
mkdir -p "$dir" || exit 1
lvcreate --config "$c" -y -an -Wn -Zn -L "\${bytes}b" -n "$tmp" --addtag "$tag" "$vg" >/dev/null || exit 1
zero_header "$tmp" "$cb" || exit 1
[ "$final" = "$tmp" ] || lvrename --config "$c" "$vg" "$tmp" "$final" >/dev/null
`;

/** The scripts the driver runs on the storage node. */
export const EVMS_SCRIPTS = { snapshot: SNAPSHOT_SCRIPT, zeroHeader: ZERO_HEADER_SCRIPT };
