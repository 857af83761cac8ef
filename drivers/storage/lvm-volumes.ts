// LVM2 plumbing shared by the drivers that keep volumes as logical volumes of one volume group on
// the SAN disk (lvm: thin LVs; evms: linear LVs under device-mapper snapshots).
//
// Metadata discipline (docs/adr/0006-san-block-storage.md): only the storage node (the driver's
// transport) runs commands that change the VG's metadata (vgcreate, lvcreate, lvchange -p,
// lvrename, lvremove, tags). Every other node only activates and deactivates, with
// `global/metadata_read_only=1`, so it never writes metadata; LVM2 reads the metadata from the
// disk with O_DIRECT at each command, so those nodes see the storage node's changes at once.
// Every LVM command carries the drivers' shared settings (lvm-config.ts: `lvm()`, LVM_CONFIG).

import { posix } from 'node:path';
import type { Transport } from '../transport/types.js';
import { createSharedDir, eachKey, pathExists, pathsExist, run, tmpPathOf, writeConfigFile, writeConfigFiles } from './file-volumes.js';
import { LVM_CONFIG_READ_ONLY, lvm } from './lvm-config.js';
import { checkTemplate, fillDevice, templateBytes } from './template-image.js';
import type { ConfigItem, TemplateSource, VolumeInfo, VolumeKey } from './types.js';
import { ActiveElsewhereError, StorageError } from './types.js';

/** The config every activation command carries: activation never writes the VG's metadata (and LVM_CONFIG). */
export const READ_ONLY_METADATA = ['--config', LVM_CONFIG_READ_ONLY];

export interface LvRow {
  lv_name: string;
  lv_attr: string;
  lv_size: string;
  data_percent: string;
  origin: string;
  pool_lv: string;
  lv_tags?: string;
}

/**
 * Shell functions for reading an LV's bytes straight from its physical volume, without mapping
 * the LV (the usage reads of evms and lvm). Mapping one for a read, as they did, cost two LVM
 * commands per volume (seconds each in a TCG dom0, minutes under load) and, on the storage node,
 * raced the runtime's activation there: LVM refuses `lvchange -ay -K` of a thin LV while its
 * pool's `_tmeta` is mapped on its own (component activation) for a read. Reading the PV maps
 * nothing, so nothing can collide with an activation on any node. Needs `$vg` set; `lv_segments`
 * runs ONE `pvs` (read-only metadata) for every read that follows; `lv_read LV OFFSET BS` then
 * prints BS bytes at byte OFFSET of LV (within one segment; read with O_DIRECT,
 * so what another node's kernel wrote to the SAN is seen), and fails when LV has no extent there.
 */
export const LV_READ_FUNCTIONS = `
lv_segments() {
  segs=$(pvs --segments --noheadings --nosuffix --units b --separator '|' --config '${LVM_CONFIG_READ_ONLY}' \
    -o vg_name,pv_name,pe_start,pvseg_start,pvseg_size,lv_name,seg_start_pe,vg_extent_size) || return 1
}
lv_where() {
  printf '%s\\n' "$segs" | awk -F'|' -v vg="$vg" -v lv="$1" -v off="$2" '
    { for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i); n = $6; gsub(/^\\[|\\]$/, "", n) }
    $1 == vg && n == lv { ext = $8; s = $7 * ext; e = s + $5 * ext
      if (off >= s && off < e) { printf "%s %.0f\\n", $2, $3 + $4 * ext + off - s; exit } }'
}
lv_read() {
  w=$(lv_where "$1" "$2"); [ -n "$w" ] || return 1
  dd if="\${w% *}" bs="$3" skip="\${w#* }" count=1 iflag=direct,skip_bytes status=none
}
`;

/** One volume group as seen through one node. */
export class VolumeGroup {
  constructor(readonly transport: Transport, readonly vg: string) {}

  dev(lv: string): string {
    return `/dev/${this.vg}/${lv}`;
  }

  async lv(lv: string): Promise<LvRow | undefined> {
    return (await this.rows(`${this.vg}/${lv}`))[0];
  }

  /** Every LV of the VG by name, in one `lvs`. */
  async all(): Promise<Map<string, LvRow>> {
    return new Map((await this.rows(this.vg)).map((r) => [r.lv_name, r]));
  }

  /**
   * The rows `lvs` reports for `what` (one LV, or a whole VG); none when the LV or the VG does not
   * exist. Any other failure throws: an `lvs` that failed (or, before, timed out at the
   * transport's 60 s on a loaded TCG node) read as "no LVs" made the caller build volumes that
   * exist. No time limit: a starved dom0 takes minutes for an `lvs`, and it does finish.
   */
  private async rows(what: string): Promise<LvRow[]> {
    const r = await this.transport.exec(lvm(
      'lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix',
      '-o', 'lv_name,lv_attr,lv_size,data_percent,origin,pool_lv,lv_tags', what,
    ), { timeoutMs: 0 });
    if (r.code !== 0) {
      if (/not found|Failed to find/i.test(r.stderr)) return [];
      throw new StorageError(`${this.transport.host}: \`lvs ${what}\` exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`);
    }
    const rep = JSON.parse(r.stdout) as { report: { lv: LvRow[] }[] };
    return rep.report[0]?.lv ?? [];
  }

  /** Removes `lv` when it exists (`known`: the VG's LVs as just read, so no `lvs` is needed). */
  async removeLv(lv: string, known?: ReadonlyMap<string, LvRow>): Promise<void> {
    if (known ? known.has(lv) : await this.lv(lv)) await run(this.transport, 'remove logical volume', lvm('lvremove', '-f', '-y', `${this.vg}/${lv}`));
  }

  /**
   * Builds LV `final` under a temporary LV, renamed into place; a failure removes the temporary.
   * `known`: the VG's LVs as just read (a batch reads them once, not per volume).
   */
  async buildLv(final: string, tmp: string, build: () => Promise<void>, known?: ReadonlyMap<string, LvRow>, opts: { renamedByBuild?: boolean } = {}): Promise<void> {
    await this.removeLv(tmp, known);
    try {
      await build();
      if (!opts.renamedByBuild) await this.rename(tmp, final);
    } catch (e) {
      await this.removeLv(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** Renames LV `from` of the VG to `to`. */
  async rename(from: string, to: string): Promise<void> {
    await run(this.transport, 'rename into place', lvm('lvrename', this.vg, from, to));
  }

  /**
   * Creates the VG on `device` when it does not exist: only on a device that holds no signature
   * at all (a disk with a filesystem or another VG is never touched). Autoactivation off: no node
   * activates the VG's LVs by itself (activation is per node, by the driver).
   */
  async ensure(device: string | undefined): Promise<void> {
    const t = this.transport;
    if ((await t.exec(lvm('vgs', this.vg))).code === 0) return;
    if (!device) throw new StorageError(`${t.host}: volume group ${this.vg} does not exist and no SAN device was given to create it on`);
    const probe = await t.exec(['blkid', '-p', '-o', 'export', device]);
    if (probe.code === 0) {
      const type = /^TYPE=(.*)$/m.exec(probe.stdout)?.[1] ?? /^PTTYPE=(.*)$/m.exec(probe.stdout)?.[1] ?? 'data';
      throw new StorageError(`${t.host}: volume group ${this.vg} does not exist and ${device} already holds ${type}; not touching it (make the VG yourself or name an empty disk)`);
    }
    await run(t, 'make physical volume', lvm('pvcreate', '-y', device));
    await run(t, 'make volume group', lvm('vgcreate', '--setautoactivation', 'n', this.vg, device));
  }
}

/**
 * What the LV-based drivers share: LVs named `<vc uid>_<volume name>`, and the first-boot config
 * and shared volumes as files in the VC's directory on the storage root (ADR 0002).
 */
export abstract class LvAndFileVolumes {
  constructor(readonly transport: Transport, protected readonly lvs: VolumeGroup) {}

  abstract createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo>;
  abstract remove(key: VolumeKey): Promise<void>;

  /** LV names: `<vc uid>_<volume name>` (LVM allows [A-Za-z0-9+_.-]); derived from the uid only. */
  lvName(key: VolumeKey): string {
    return `${key.vcUid}_${key.name}`;
  }

  protected filePath(key: VolumeKey): string {
    return posix.join(key.vcDir, key.name);
  }

  createSwapAll(keys: readonly VolumeKey[], sizeBytes: number): Promise<VolumeInfo[]> {
    return eachKey(keys, (k) => this.createSwap(k, sizeBytes));
  }

  writeConfig(key: VolumeKey, bytes: Buffer, sizeBytes?: number): Promise<VolumeInfo> {
    return writeConfigFile(this.transport, this.filePath(key), bytes, sizeBytes);
  }

  writeConfigAll(items: readonly ConfigItem[]): Promise<VolumeInfo[]> {
    return writeConfigFiles(this.transport, items.map((i) => ({ path: this.filePath(i.key), bytes: i.bytes, sizeBytes: i.sizeBytes })));
  }

  createShared(key: VolumeKey): Promise<VolumeInfo> {
    return createSharedDir(this.transport, this.filePath(key));
  }

  async removeAll(keys: readonly VolumeKey[]): Promise<void> {
    await eachKey(keys, (k) => this.remove(k));
  }

  /** One `lvs` of the VG and one existence check of the file volumes. */
  async existsAll(keys: readonly VolumeKey[]): Promise<boolean[]> {
    const [lvs, files] = await Promise.all([this.lvs.all(), pathsExist(this.transport, keys.map((k) => this.filePath(k)))]);
    return keys.map((k, i) => lvs.has(this.lvName(k)) || files[i]!);
  }

  async exists(key: VolumeKey): Promise<boolean> {
    return (await this.lvs.lv(this.lvName(key))) !== undefined || (await pathExists(this.transport, this.filePath(key)));
  }
}

/**
 * What the SAN drivers with per-node activation share (evms, lvm; ADR 0006): the original as a
 * linear LV filled with the template and set read-only (every node may map it, none can write
 * it), swap as a linear LV with mkswap, nothing left active on the storage node after a create,
 * and the record of where a snapshot is active (`.<name>.active` in the VC's directory on the
 * shared storage root, written by the activating node) with the refusals built on it.
 */
export abstract class SanVolumes extends LvAndFileVolumes {
  constructor(transport: Transport, readonly vg: VolumeGroup, protected readonly sanDevice: string | undefined) {
    super(transport, vg);
  }

  abstract deactivate(key: VolumeKey, on: Transport): Promise<void>;
  /** Whether an LV is a snapshot (it has a record of where it is active). */
  protected abstract isSnapshot(row: LvRow): boolean;
  /** LVs a volume's LV owns besides itself and its temporary (lvm: its pools); removed with it. */
  protected ownedLvs(_lv: string): string[] {
    return [];
  }

  protected recordPath(key: VolumeKey): string {
    return posix.join(key.vcDir, `.${key.name}.active`);
  }

  async createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo> {
    const t = this.transport;
    const final = this.lvName(key);
    if (!(await this.vg.lv(final))) {
      await checkTemplate(t, source);
      await this.vg.ensure(this.sanDevice);
      const tmp = `${final}.tmp`;
      await this.vg.buildLv(final, tmp, async () => {
        const bytes = await templateBytes(t, source);
        await run(t, 'create original volume', lvm('lvcreate', '-y', '-Wy', '-Zy', '-L', `${bytes}b`, '-n', tmp, this.vg.vg));
        await fillDevice(t, source, this.vg.dev(tmp), posix.join(key.vcDir, `.${key.name}.rootfs`));
        await run(t, 'deactivate original', lvm('lvchange', '-an', `${this.vg.vg}/${tmp}`));
      });
    }
    // Read-only for every node; also after a crash between the rename and this step.
    const row = await this.vg.lv(final);
    if (row && row.lv_attr[1] !== 'r') await run(t, 'make original read-only', lvm('lvchange', '-p', 'r', `${this.vg.vg}/${final}`));
    return { path: this.vg.dev(final), format: 'raw' };
  }

  protected async originRow(original: VolumeKey): Promise<LvRow> {
    const row = await this.vg.lv(this.lvName(original));
    if (!row) throw new StorageError(`${this.transport.host}: original ${this.vg.vg}/${this.lvName(original)} does not exist; create it first`);
    return row;
  }

  createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo> {
    return this.createSwapAll([key], sizeBytes).then((r) => r[0]!);
  }

  /** One `lvs` of the VG for the batch (each LVM command takes seconds in a TCG node), then per missing swap: create, mkswap, unmap, rename. */
  override async createSwapAll(keys: readonly VolumeKey[], sizeBytes: number): Promise<VolumeInfo[]> {
    const lvs = await this.vg.all();
    if (keys.some((k) => !lvs.has(this.lvName(k)))) await this.vg.ensure(this.sanDevice);
    return eachKey(keys, async (key) => {
      const final = this.lvName(key);
      if (!lvs.has(final)) {
        const tmp = `${final}.tmp`;
        await this.vg.buildLv(final, tmp, async () => {
          await run(this.transport, 'create swap volume', lvm('lvcreate', '-y', '-Wy', '-Zy', '-L', `${sizeBytes}b`, '-n', tmp, this.vg.vg));
          await run(this.transport, 'format swap', ['mkswap', '-q', this.vg.dev(tmp)]);
          await run(this.transport, 'deactivate swap', lvm('lvchange', '-an', `${this.vg.vg}/${tmp}`));
        }, lvs);
      }
      return { path: this.vg.dev(final), format: 'raw' as const };
    });
  }

  /**
   * Per snapshot key, in one `lvs` of the VG for the batch: `build(key, final, origin, lvs)` for
   * each snapshot that does not exist, nothing for one that does. `build` makes the snapshot in
   * as few commands on the node as it can (one script each: every command is an SSH round trip
   * and a process start, seconds on a loaded TCG node), the VC's directory included (the record
   * of where it is active goes there).
   */
  protected async snapshotEach(original: VolumeKey, keys: readonly VolumeKey[], build: (key: VolumeKey, final: string, origin: LvRow, lvs: ReadonlyMap<string, LvRow>) => Promise<void>): Promise<void> {
    const lvs = await this.vg.all();
    const missing = keys.filter((k) => !lvs.has(this.lvName(k)));
    if (missing.length === 0) return;
    const origin = lvs.get(this.lvName(original));
    if (!origin) throw new StorageError(`${this.transport.host}: original ${this.vg.vg}/${this.lvName(original)} does not exist; create it first`);
    for (const key of missing) await build(key, this.lvName(key), origin, lvs);
  }

  remove(key: VolumeKey): Promise<void> {
    return this.removeAll([key]);
  }

  /**
   * Reads the VG once, then per key: refusals, unmapping here, ONE lvremove of whichever of its
   * LVs exist (temporary, LV, owned LVs) and one rm of its files and record. (Each LVM command
   * takes seconds in a TCG node: an `lvs` per possible LV made the conformance's removal case
   * take minutes.) An original that LVM snapshots still use (lvm's external origin) is refused:
   * `lvremove -f` would take them along.
   */
  override async removeAll(keys: readonly VolumeKey[]): Promise<void> {
    const lvs = await this.vg.all();
    for (const key of keys) {
      const lv = this.lvName(key);
      const row = lvs.get(lv);
      // read again: this call may have removed the snapshots that used it
      if (row?.lv_attr[0] === 'o' && (await this.vg.lv(lv))?.lv_attr[0] === 'o') {
        throw new StorageError(`${this.transport.host}: cannot remove ${key.name}: thin snapshots still use it as their origin; remove them first`);
      }
      if (row && this.isSnapshot(row)) await this.releaseHere(key, 'remove');
      else if (row?.lv_attr[4] === 'a') await this.transport.exec(lvm('lvchange', '-an', `${this.vg.vg}/${lv}`));
      const present = [`${lv}.tmp`, lv, ...this.ownedLvs(lv)].filter((n) => lvs.has(n));
      if (present.length > 0) await run(this.transport, 'remove logical volumes', lvm('lvremove', '-f', '-y', ...present.map((n) => `${this.vg.vg}/${n}`)));
      const file = this.filePath(key);
      await run(this.transport, 'remove', ['rm', '-rf', '--one-file-system', '--', tmpPathOf(file), file, this.recordPath(key)]);
    }
  }

  /** The device-mapper name of a snapshot's own mapping: the VM's disk, on the node that runs it. */
  abstract dmName(key: VolumeKey): string;
  protected dmPath(key: VolumeKey): string {
    return `/dev/mapper/${this.dmName(key)}`;
  }
  abstract activate(key: VolumeKey, on: Transport, opts?: { takeOver?: boolean }): Promise<VolumeInfo>;

  // --- live migration ----------------------------------------------------------------------
  // The target's hypervisor opens the disk when the incoming domain is made, long before the
  // switchover, but the target must not read the snapshot's state while the source still writes
  // (evms: it would keep a stale exception table and overwrite the source's chunks; lvm: two
  // kernels would write the thin pool's metadata). So the target gets the snapshot's own device
  // (dmName) early with the snapshot's size and an `error` table, and the real table moves over at
  // the switchover, while both hypervisors keep the device open.

  /** Makes the snapshot's device on `to` (size right, `error` table) for an incoming domain. */
  async prepareIncoming(key: VolumeKey, to: Transport): Promise<VolumeInfo> {
    await run(to, `prepare ${key.name} for an incoming domain`, ['sh', '-c', PREPARE_INCOMING_SCRIPT, 'sh', this.vg.vg, this.lvName(key), this.dmName(key), this.incomingSizeMode]);
    return { path: this.dmPath(key), format: 'raw' };
  }

  /** How PREPARE_INCOMING_SCRIPT finds the snapshot's size: the LV's own (lvm thin) or its origin's, named by a tag (evms). */
  protected abstract readonly incomingSizeMode: 'lv' | 'origin-tag';

  /**
   * At the switchover (the source domain stopped): suspends the mapping on `from` (in-flight
   * writes complete) and swaps an `error` table in there, and unmaps what LVM mapped for it there
   * when `releaseLv` (lvm: the thin LV and so its pool, whose metadata the kernel then commits);
   * then activates on `to` with take-over (the state is read from the SAN now), which loads the
   * real table into the incoming device; the record names `to`. `to` must have been prepared
   * (prepareIncoming). Idempotent: a retry after a lost answer finds the record naming `to`.
   * Unmap the source's device with `deactivate` once its domain is gone.
   */
  async handOver(key: VolumeKey, from: Transport, to: Transport): Promise<void> {
    const holder = await this.activeOn(key);
    if (holder === to.host) return void (await this.activate(key, to));
    if (holder !== from.host) throw new ActiveElsewhereError(`cannot hand ${key.name} over from ${from.host}: the record names ${holder ?? 'no node'}`);
    const lv = this.releaseLv ? [this.vg.vg, this.lvName(key)] : [];
    await run(from, `release ${key.name} at the switchover`, ['sh', '-c', RELEASE_SCRIPT, 'sh', this.dmName(key), ...lv]);
    await this.activate(key, to, { takeOver: true });
  }

  /** Whether the handover unmaps the snapshot's LV on the source before the target maps it (lvm thin). */
  protected abstract readonly releaseLv: boolean;

  async activeOn(key: VolumeKey): Promise<string | undefined> {
    const r = await this.transport.exec(['cat', this.recordPath(key)]);
    const node = r.code === 0 ? r.stdout.trim() : '';
    return node || undefined;
  }

  /** Refuses when the record names another node; deactivates here when mapped here. */
  protected async releaseHere(key: VolumeKey, what: string): Promise<void> {
    const on = await this.activeOn(key);
    if (on !== undefined && on !== this.transport.host) {
      throw new ActiveElsewhereError(`${this.transport.host}: cannot ${what} ${key.name}: it is active on ${on}; deactivate it there first (stop or move its VM)`);
    }
    await this.deactivate(key, this.transport);
  }
}

/** The tag an evms snapshot's exception store carries, naming its original LV (`vl.origin=<LV>`), and a sed printing the LV. */
export const ORIGIN_TAG = 'vl.origin=';
export const ORIGIN_SED = `s/^ *${ORIGIN_TAG.replace('.', '\\.')}//p`;

/**
 * Args: vg lv dm-name size-mode (lv | origin-tag). A device of the snapshot's size with an `error`
 * table (no-op if present): the size of LV itself (lvm thin: an external-origin snapshot has its
 * origin's size) or of the LV its origin tag names (evms: LV is the exception store).
 */
const PREPARE_INCOMING_SCRIPT = `
vg=$1 lv=$2 dm=$3 mode=$4
dmsetup info "$dm" >/dev/null 2>&1 && exit 0
ro="${LVM_CONFIG_READ_ONLY}"
sized=$lv
if [ "$mode" = origin-tag ]; then
  sized=$(lvs --noheadings -o lv_tags --config "$ro" "$vg/$lv" | tr ',' '\\n' | sed -n '${ORIGIN_SED}')
  [ -n "$sized" ] || { echo "$vg/$lv is not a snapshot" >&2; exit 1; }
fi
size=$(lvs --noheadings --units s --nosuffix -o lv_size --config "$ro" "$vg/$sized" | tr -d ' ') || exit 1
[ -n "$size" ] || { echo "$vg/$sized has no size" >&2; exit 1; }
dmsetup create "$dm" --table "0 $size error"
`;

/**
 * Args: dm-name [vg lv]. Suspends (flushes) the snapshot's mapping here and puts an error table in
 * its place; with vg and lv, then unmaps LV here (lvm thin: its pool goes with it, the kernel
 * committing the pool's metadata to the SAN first).
 */
const RELEASE_SCRIPT = `
dm=$1 vg=$2 lv=$3
size=$(dmsetup table "$dm" | cut -d' ' -f2) || exit 1
dmsetup suspend "$dm" && dmsetup load "$dm" --table "0 $size error" && dmsetup resume "$dm" || exit 1
[ -n "$lv" ] && [ -b "/dev/$vg/$lv" ] || exit 0
lvchange -an --config "${LVM_CONFIG_READ_ONLY}" "$vg/$lv"
`;

/** Runs an activation script on node `on` (exit 3: no such LV, 4: active elsewhere); its last line is the device. */
export async function runActivation(on: Transport, key: VolumeKey, lv: string, script: string, args: readonly string[]): Promise<VolumeInfo> {
  const r = await on.exec(['sh', '-c', script, 'sh', ...args], { timeoutMs: 0 });
  const why = r.stderr.trim() || r.stdout.trim();
  if (r.code === 4) throw new ActiveElsewhereError(`${on.host}: cannot activate ${key.name}: ${why}; deactivate it there first`);
  if (r.code !== 0) throw new StorageError(`${on.host}: activate ${key.name} (${lv}): ${why}`);
  return { path: r.stdout.trim().split('\n').pop()!, format: 'raw' };
}
