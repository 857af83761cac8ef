// Test helpers: the per-node disks ADR 0002 describes, made the way the storage layer makes them
// (qcow2 overlay on the template, mkswap on a file, a ustar config archive padded to 1 MiB), and
// the reference guest built once per test run into a cache directory.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildGuestImage, type GuestImage } from '../../hack/lib/guest-image.js';

export const GUEST_CACHE = process.env.VC_GUEST_IMAGE_DIR ?? '/var/tmp/virtualinux-guest-image';

let guest: GuestImage | undefined;
/** The reference guest, built on first use (cached across runs in GUEST_CACHE). */
export function referenceGuest(): GuestImage {
  guest ??= buildGuestImage({ out: GUEST_CACHE, log: () => {} });
  return guest;
}

export interface NodeDisks {
  root: string;
  swap: string;
  config: string;
}

/** Writes a config volume: `vc/config.env` (shell-quoted) and `vc/firstboot.sh`, ustar, exactly 1 MiB. */
export function writeConfigDisk(file: string, env: Record<string, string>, firstboot = ''): void {
  const stage = `${file}.d`;
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(path.join(stage, 'vc'), { recursive: true });
  const quote = (v: string): string => `'${v.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    path.join(stage, 'vc/config.env'),
    Object.entries(env).map(([k, v]) => `${k}=${quote(v)}\n`).join(''),
  );
  fs.writeFileSync(path.join(stage, 'vc/firstboot.sh'), firstboot);
  execFileSync('tar', ['--format=ustar', '--owner=0', '--group=0', '-C', stage, '-cf', file, 'vc']);
  execFileSync('truncate', ['-s', '1M', file]);
  fs.rmSync(stage, { recursive: true, force: true });
}

export function guestEnv(node: string, ip: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    VC_NAME: 'tvc', VC_NAMESPACE: 'test', VC_NODE_NAME: node, VC_NODE_INDEX: '0', VC_NODE_IP: ip,
    VC_SUBNET: '198.19.7.0/24', VC_PREFIX: '24', VC_GATEWAY: '198.19.7.1', VC_PEERS: ip,
    VC_HOSTNAME: node, VC_SWAP_DEVICE: '/dev/vdb', VC_SHARED_MOUNT: '', VC_SHARED_TAG: 'vcshared',
    VC_CONFIG_REVISION: '1', ...extra,
  };
}

/**
 * Root overlay on the template (or, `raw`, a raw copy of it: for hypervisors without a qcow2
 * back-end, such as Xen without QEMU in dom0), 32 MiB swap, config disk, all under dir.
 */
export function makeNodeDisks(dir: string, env: Record<string, string>, firstboot = '', rootFormat: 'qcow2' | 'raw' = 'qcow2'): NodeDisks {
  const g = referenceGuest();
  fs.mkdirSync(dir, { recursive: true });
  const d: NodeDisks = {
    root: path.join(dir, rootFormat === 'raw' ? 'root.img' : 'root.qcow2'),
    swap: path.join(dir, 'swap.img'),
    config: path.join(dir, 'config.tar'),
  };
  if (rootFormat === 'raw') execFileSync('qemu-img', ['convert', '-O', 'raw', g.image, d.root]);
  else execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', g.image, d.root]);
  execFileSync('truncate', ['-s', '32M', d.swap]);
  execFileSync('mkswap', [d.swap], { stdio: 'ignore' });
  writeConfigDisk(d.config, env, firstboot);
  return d;
}
