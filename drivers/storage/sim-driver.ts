// SIMULATION ONLY: the storage driver used when the storage node is a sim host
// (drivers/transport/sim-host.ts, `spec.transport: sim`), whatever spec.storageDriver the VC
// names: volumes on the simulated SAN that every sim host with the same storage root sees, each
// call one `vl-sim volume ...` command through the node's transport (so a host that stops
// answering fails them at their deadline), each volume operation taking the host's storageOpMs.
// Content is kept as a digest and a size, never the bytes. For benchmarks of the control plane;
// not for production and never the proof that a storage feature works (README "Simulated hosts").
// Every template is taken to exist on a sim SAN.

import { createHash } from 'node:crypto';
import type { StorageDriverName } from '../../api/types.js';
import { execOk, type Transport } from '../transport/types.js';
import { simHostOf } from '../transport/sim-transport.js';
import { simVolumePath } from '../transport/sim-host.js';
import { StorageError, type ConfigItem, type StorageDriver, type TemplateSource, type VolumeInfo, type VolumeKey } from './types.js';

export class SimStorageDriver implements StorageDriver {
  constructor(
    readonly transport: Transport,
    /** The driver the VC asked for: reported as the name, the format follows it (lvm: raw devices). */
    readonly name: StorageDriverName,
  ) {
    if (!simHostOf(transport)) throw new StorageError(`${transport.host}: the sim storage driver needs a sim host (spec.transport: sim)`);
  }

  pathOf(key: VolumeKey): string {
    return simVolumePath(key.vcDir, key.name);
  }

  private info(key: VolumeKey): VolumeInfo {
    return { path: this.pathOf(key), format: this.name === 'qcow2' ? 'qcow2' : 'raw' };
  }

  private async call(args: readonly string[], stdin?: string): Promise<string> {
    return execOk(this.transport, ['vl-sim', 'volume', ...args], stdin !== undefined ? { stdin } : {});
  }

  async createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo> {
    await this.call(['original', this.pathOf(key), String(source.sizeBytes ?? 1 << 30)]);
    return this.info(key);
  }

  async snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    return (await this.snapshotAll(original, [key]))[0]!;
  }

  async snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    if (keys.length) await this.call(['snapshot', this.pathOf(original), ...keys.map((k) => this.pathOf(k))]);
    return keys.map((k) => this.info(k));
  }

  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    await this.call(['reset', this.pathOf(original), this.pathOf(key)]);
    return this.info(key);
  }

  async createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo> {
    return (await this.createSwapAll([key], sizeBytes))[0]!;
  }

  async createSwapAll(keys: readonly VolumeKey[], sizeBytes: number): Promise<VolumeInfo[]> {
    if (keys.length) await this.call(['swap', String(sizeBytes), ...keys.map((k) => this.pathOf(k))]);
    return keys.map((k) => ({ ...this.info(k), format: 'raw' as const }));
  }

  async writeConfig(key: VolumeKey, bytes: Buffer, sizeBytes?: number): Promise<VolumeInfo> {
    return (await this.writeConfigAll([{ key, bytes, sizeBytes }]))[0]!;
  }

  async writeConfigAll(items: readonly ConfigItem[]): Promise<VolumeInfo[]> {
    for (const i of items) if (i.sizeBytes !== undefined && !(i.sizeBytes >= i.bytes.length)) throw new Error(`config volume ${this.pathOf(i.key)}: ${i.bytes.length} bytes do not fit in ${i.sizeBytes}`);
    // contentDigest ignores trailing zeros: the same volume whether the caller sent them or not.
    const list = items.map((i) => ({ path: this.pathOf(i.key), digest: contentDigest(i.bytes), size: i.sizeBytes ?? i.bytes.length }));
    if (list.length) await this.call(['config'], JSON.stringify(list));
    return items.map((i) => ({ ...this.info(i.key), format: 'raw' as const }));
  }

  async createShared(key: VolumeKey): Promise<VolumeInfo> {
    const path = this.pathOf(key); // a directory
    await this.call(['shared', path, '0', 'nfs']);
    return { path, format: 'dir' };
  }

  async remove(key: VolumeKey): Promise<void> {
    await this.removeAll([key]);
  }

  async removeAll(keys: readonly VolumeKey[]): Promise<void> {
    if (keys.length) await this.call(['remove', ...keys.map((k) => this.pathOf(k))]);
  }

  async usage(key: VolumeKey): Promise<number> {
    return (await this.usageAll([key]))[0]!;
  }

  async usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    if (!keys.length) return [];
    return (await this.call(['usage', ...keys.map((k) => this.pathOf(k))])).split('\n').map(Number);
  }

  async exists(key: VolumeKey): Promise<boolean> {
    return (await this.existsAll([key]))[0]!;
  }

  async existsAll(keys: readonly VolumeKey[]): Promise<boolean[]> {
    if (!keys.length) return [];
    return (await this.call(['exists', ...keys.map((k) => this.pathOf(k))])).split('\n').map((l) => l === '1');
  }
}

/** A shared block of zeros to find where a config disk's content ends (its padding compared natively). */
const ZEROS = Buffer.alloc(64 * 1024);

/**
 * The digest a sim volume keeps of `bytes`: sha256 of the bytes up to the last non-zero one (with
 * the size kept beside it, the same bytes give the same pair). A config disk is 1 MiB of which a
 * few KiB are content: hashing all of it was ~2 % of vc-manager's CPU at 10,000 VMs
 * (hack/bench-scale, session 11); the zero padding is skipped in 64 KiB compares.
 */
export function contentDigest(bytes: Buffer): string {
  let end = bytes.length;
  while (end > 0) {
    const from = Math.max(0, end - ZEROS.length);
    if (bytes.compare(ZEROS, 0, end - from, from, end) !== 0) break;
    end = from;
  }
  // The last non-zero byte within the block that has one.
  while (end > 0 && bytes[end - 1] === 0) end--;
  return createHash('sha256').update(bytes.subarray(0, end)).digest('hex');
}
