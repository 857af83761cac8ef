// LvmDriver: LVM2 thin provisioning, the modern successor of the paper's EVMS snapshots. The
// original is a thin LV in a thin pool filled with the template and set read-only
// (`lvchange -p r`); each snapshot is a thin snapshot (`lvcreate -s` of the thin origin, no size:
// it shares the pool) activated with `-K` (thin snapshots carry the activation-skip flag). Thin
// snapshots are independent volumes with no limit on how many are active at once: the paper's
// "dozen active snapshots" problem (section 3.2) does not arise, and no reset-on-activate exists.
//
// Swap volumes are thin LVs too; the first-boot config volume and the shared volume stay files on
// the storage root (ADR 0002: written without privileges), so the VC directory exists here too.
//
// Needs device-mapper on the storage node; this project's CI has none, so the driver is tested
// against recorded argument vectors (test/storage/lvm-driver.recorded.test.ts).

import { posix } from 'node:path';
import type { Transport } from '../transport/types.js';
import {
  allocatedBytes,
  eachKey,
  pathsUsage,
  removePath,
  run,
  tmpPathOf,
  treeBytes,
} from './file-volumes.js';
import { LvAndFileVolumes, VolumeGroup, type LvRow } from './lvm-volumes.js';
import { checkTemplate, fillDevice, templateBytes } from './template-image.js';
import type { StorageDriver, TemplateSource, VolumeInfo, VolumeKey } from './types.js';
import { StorageError } from './types.js';


export interface LvmDriverOptions {
  /** The volume group on the shared storage (clustered with lvmlockd when several hosts use it). */
  vg: string;
  /** The thin pool in `vg`; default `virtualinux`. */
  thinPool?: string;
  /** When set and the pool is absent, it is created with this size; otherwise absent is an error. */
  poolSizeBytes?: number;
  /** When set and the VG is absent, it is made on this (empty) SAN disk. */
  sanDevice?: string;
}


export class LvmDriver extends LvAndFileVolumes implements StorageDriver {
  readonly name = 'lvm' as const;
  readonly vg: string;
  readonly pool: string;
  private readonly group: VolumeGroup;
  constructor(transport: Transport, private readonly opts: LvmDriverOptions) {
    const group = new VolumeGroup(transport, opts.vg);
    super(transport, group);
    this.group = group;
    this.vg = opts.vg;
    this.pool = opts.thinPool ?? 'virtualinux';
  }

  private tmpLv(key: VolumeKey): string {
    return `${this.lvName(key)}.tmp`;
  }
  private dev(lv: string): string {
    return `/dev/${this.vg}/${lv}`;
  }
  pathOf(key: VolumeKey): string {
    return this.dev(this.lvName(key));
  }

  async lv(lv: string): Promise<LvRow | undefined> {
    return this.group.lv(lv);
  }

  private allLvs(): Promise<Map<string, LvRow>> {
    return this.group.all();
  }

  private removeLv(lv: string): Promise<void> {
    return this.group.removeLv(lv);
  }

  private async ensurePool(): Promise<void> {
    if (await this.lv(this.pool)) return;
    if (this.opts.sanDevice) await this.group.ensure(this.opts.sanDevice);
    if (!this.opts.poolSizeBytes) {
      throw new StorageError(
        `${this.transport.host}: thin pool ${this.vg}/${this.pool} does not exist; create it ` +
          `(lvcreate --type thin-pool -L <size> -n ${this.pool} ${this.vg}) or configure poolSizeBytes`,
      );
    }
    await run(this.transport, 'create thin pool', [
      'lvcreate', '--type', 'thin-pool', '-L', `${this.opts.poolSizeBytes}b`, '-n', this.pool, this.vg,
    ]);
  }

  private async createThin(lv: string, sizeBytes: number): Promise<void> {
    await run(this.transport, 'create thin volume', [
      'lvcreate', '--type', 'thin', '-V', `${sizeBytes}b`, '--thinpool', `${this.vg}/${this.pool}`, '-n', lv, '-y',
    ]);
  }

  private buildLv(final: string, tmp: string, build: () => Promise<void>): Promise<void> {
    return this.group.buildLv(final, tmp, build);
  }

  async createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo> {
    const t = this.transport;
    const final = this.lvName(key);
    if (!(await this.lv(final))) {
      await checkTemplate(t, source);
      await this.ensurePool();
      const tmp = this.tmpLv(key);
      await this.buildLv(final, tmp, async () => {
        await this.createThin(tmp, await templateBytes(t, source));
        await fillDevice(t, source, this.dev(tmp), posix.join(key.vcDir, `.${key.name}.rootfs`), true);
      });
    }
    // Read-only while snapshots exist; also after a crash between the rename and this step.
    const row = await this.lv(final);
    if (row && row.lv_attr[1] !== 'r') {
      await run(t, 'make original read-only', ['lvchange', '-p', 'r', `${this.vg}/${final}`]);
    }
    return { path: this.dev(final), format: 'raw' };
  }

  private async makeSnapshot(original: VolumeKey, tmp: string): Promise<void> {
    await run(this.transport, 'create thin snapshot', [
      'lvcreate', '-s', '-p', 'rw', '-n', tmp, `${this.vg}/${this.lvName(original)}`,
    ]);
    await run(this.transport, 'activate snapshot', ['lvchange', '-ay', '-K', `${this.vg}/${tmp}`]);
  }

  async snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const final = this.lvName(key);
    if (!(await this.lv(final))) {
      await this.buildLv(final, this.tmpLv(key), () => this.makeSnapshot(original, this.tmpLv(key)));
    }
    return { path: this.dev(final), format: 'raw' };
  }

  // The batch forms that change LVs run the LVM2 commands key by key (each is its own lvcreate);
  // the config files go in one round trip, and existsAll/usageAll read one `lvs` of the VG.
  snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    return eachKey(keys, (k) => this.snapshot(original, k));
  }

  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const final = this.lvName(key);
    const tmp = this.tmpLv(key);
    await this.buildLv(final, tmp, async () => {
      await this.makeSnapshot(original, tmp);
      await this.removeLv(final);
    });
    return { path: this.dev(final), format: 'raw' };
  }

  async createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo> {
    const final = this.lvName(key);
    if (!(await this.lv(final))) {
      await this.ensurePool();
      const tmp = this.tmpLv(key);
      await this.buildLv(final, tmp, async () => {
        await this.createThin(tmp, sizeBytes);
        await run(this.transport, 'format swap', ['mkswap', '-q', this.dev(tmp)]);
      });
    }
    return { path: this.dev(final), format: 'raw' };
  }

  async remove(key: VolumeKey): Promise<void> {
    await this.removeLv(this.tmpLv(key));
    await this.removeLv(this.lvName(key));
    const file = this.filePath(key);
    await removePath(this.transport, tmpPathOf(file));
    await removePath(this.transport, file);
  }

  /**
   * Thin LVs: the pool space they map (size x data_percent). A thin snapshot's mapping includes
   * the blocks it still shares with its origin, so for snapshots the origin's mapped bytes are
   * subtracted: an estimate of the blocks the snapshot added (exact per-volume exclusive bytes
   * need thin_ls on a metadata snapshot). Files: allocated bytes.
   */
  async usage(key: VolumeKey): Promise<number> {
    const row = await this.lv(this.lvName(key));
    if (row) return thinBytes(row, row.origin ? await this.lv(row.origin) : undefined);
    const file = this.filePath(key);
    const d = await this.transport.exec(['test', '-d', file]);
    return d.code === 0 ? treeBytes(this.transport, file) : allocatedBytes(this.transport, file);
  }

  /** One `lvs` of the VG and one du for the file volumes. */
  async usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    const [lvs, files] = await Promise.all([this.allLvs(), pathsUsage(this.transport, keys.map((k) => this.filePath(k)))]);
    return keys.map((k, i) => {
      const row = lvs.get(this.lvName(k));
      return row ? thinBytes(row, row.origin ? lvs.get(row.origin) : undefined) : files[i]!;
    });
  }
}

/** The pool bytes a thin LV maps (size x data_percent), less its origin's for a snapshot. */
function thinBytes(row: LvRow, origin: LvRow | undefined): number {
  const mapped = (r: LvRow): number => Math.round((Number(r.lv_size) * Number(r.data_percent || 0)) / 100);
  return Math.max(0, mapped(row) - (origin ? mapped(origin) : 0));
}
