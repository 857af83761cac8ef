// Turning an OSTemplate's image into a file: a copy of a disk image (reflinked where the
// filesystem can, sparse elsewhere) or a fresh ext4 image filled from a root-filesystem tarball.

import { posix } from 'node:path';
import type { Transport } from '../transport/types.js';
import { removePath, run } from './file-volumes.js';
import type { TemplateSource } from './types.js';
import { StorageError, TemplateNotFoundError } from './types.js';

const GiB = 1024 ** 3;

/** The disk format of an image file, as qemu-img sees it. */
export async function probeFormat(t: Transport, path: string): Promise<'qcow2' | 'raw'> {
  const out = await run(t, 'inspect image', ['qemu-img', 'info', '--output=json', '-U', path]);
  const fmt = (JSON.parse(out) as { format?: string }).format;
  if (fmt === 'qcow2' || fmt === 'raw') return fmt;
  throw new StorageError(`${t.host}: ${path} is a ${fmt} image; templates must be qcow2 or raw`);
}

/** Fails with TemplateNotFoundError unless the template's image or tarball is on the node. */
export async function checkTemplate(t: Transport, source: TemplateSource): Promise<void> {
  const p = source.path ?? source.tarball;
  if (!p) throw new TemplateNotFoundError('the OSTemplate has neither spec.image.path nor spec.image.tarball');
  const r = await t.exec(['test', '-f', p]);
  if (r.code !== 0) {
    throw new TemplateNotFoundError(
      `${t.host}: template image ${p} does not exist; put it on the storage root or fix the OSTemplate's spec.image`,
    );
  }
}

/**
 * Writes the template's content to `dest` (which must not exist) and returns its format.
 * `reflink`: 'always' demands a copy-on-write clone (btrfs), 'auto' falls back to a sparse copy.
 */
export async function materializeTemplate(
  t: Transport,
  source: TemplateSource,
  dest: string,
  reflink: 'always' | 'auto',
): Promise<'qcow2' | 'raw'> {
  await checkTemplate(t, source);
  if (source.path) {
    const format = source.format ?? (await probeFormat(t, source.path));
    const r = await t.exec(['cp', `--reflink=${reflink}`, '--', source.path, dest], { timeoutMs: 0 });
    if (r.code !== 0 && reflink === 'always' && /cross-device|not supported/i.test(r.stderr)) {
      // The template lives on another filesystem: the original is a one-time full copy.
      await run(t, 'copy template', ['cp', '--sparse=always', '--', source.path, dest]);
    } else if (r.code !== 0) {
      await run(t, 'copy template', ['cp', `--reflink=${reflink}`, '--', source.path, dest]);
    }
    return format;
  }
  // A tarball: unpack into a scratch directory beside dest, then build ext4 from it (mke2fs -d).
  const scratch = posix.join(posix.dirname(dest), `.${posix.basename(dest)}.rootfs`);
  await removePath(t, scratch);
  try {
    await run(t, 'create scratch dir', ['mkdir', '-p', scratch]);
    await run(t, 'unpack template tarball', ['tar', '-x', '--numeric-owner', '-f', source.tarball!, '-C', scratch]);
    const size = source.sizeBytes ?? GiB;
    await run(t, 'allocate image', ['truncate', '-s', String(size), dest]);
    await run(t, 'build ext4 image from tarball', ['mkfs.ext4', '-q', '-F', '-L', 'vc-root', '-d', scratch, dest]);
  } finally {
    await removePath(t, scratch).catch(() => undefined);
  }
  return 'raw';
}


/** The bytes a block device must hold to take the template: its image's virtual size, or sizeBytes for a tarball. */
export async function templateBytes(t: Transport, source: TemplateSource): Promise<number> {
  if (!source.path) return source.sizeBytes ?? GiB;
  const info = JSON.parse(await run(t, 'inspect template', ['qemu-img', 'info', '--output=json', '-U', source.path])) as { 'virtual-size': number };
  return info['virtual-size'];
}

/**
 * Writes the template's content onto block device `device` (at least templateBytes long): the
 * image converted to raw, or an ext4 built from the tarball (unpacked in `scratch`, removed after).
 * `targetIsZero`: the device reads as zeros where nothing was written (a fresh thin LV).
 */
export async function fillDevice(t: Transport, source: TemplateSource, device: string, scratch: string, targetIsZero = false): Promise<void> {
  if (source.path) {
    const fmt = source.format ?? (await probeFormat(t, source.path));
    // A fresh thin LV reads as zeros: the template's holes need not be written (nor provisioned).
    await run(t, 'fill original', ['qemu-img', 'convert', '-n', ...(targetIsZero ? ['--target-is-zero'] : []), '-f', fmt, '-O', 'raw', source.path, device]);
    return;
  }
  await removePath(t, scratch);
  try {
    await run(t, 'create scratch dir', ['mkdir', '-p', scratch]);
    await run(t, 'unpack template tarball', ['tar', '-x', '--numeric-owner', '-f', source.tarball!, '-C', scratch]);
    await run(t, 'build ext4 from tarball', ['mkfs.ext4', '-q', '-F', '-L', 'vc-root', '-d', scratch, device]);
  } finally {
    await removePath(t, scratch).catch(() => undefined);
  }
}
