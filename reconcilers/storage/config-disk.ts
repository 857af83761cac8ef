// The first-boot configuration disk of ADR 0002 (stage 4 of the paper's VC creation): a 1 MiB
// raw disk holding a POSIX ustar archive with vc/config.env and vc/firstboot.sh. Pure: the same
// inputs give the same bytes (fixed mtime, owner and order), so rewriting it is idempotent and
// a changed byte means a changed configuration.

import { createHash } from 'node:crypto';
import { nfsPseudoPath } from '../network/addresses.js';

export const CONFIG_DISK_BYTES = 1024 * 1024;
export const SWAP_DEVICE = '/dev/vdb';
export const SHARED_MOUNT = '/shared';
export const SHARED_TAG = 'vcshared';
/** `<gateway>:/vc/<namespace>/<name>`: the NFS export a VC's guests mount its shared storage from. */
export function sharedNfsSource(gateway: string, namespace: string, vcName: string): string {
  return `${gateway}:${nfsPseudoPath(`${namespace}/${vcName}`)}`;
}

export interface NodeConfigInput {
  vcName: string;
  namespace: string;
  nodeName: string;
  index: number;
  ip: string;
  subnet: string;
  gateway: string;
  peers: string[];
  hasShared: boolean;
  /**
   * The VC's shared storage is served over NFS by its node's gateway (spec.sharedStorage.filesystem
   * `nfs`: ganesha; `ocfs2`: the node's OCFS2 mount through its kernel NFS server): the guest mounts
   * nfsPseudoPath(<namespace>/<vcName>) from `gateway`. Ignored without hasShared.
   */
  sharedNfs?: boolean;
  firstBootScript?: string;
}

/** The variables of config.env (ADR 0002 and API.md), VC_CONFIG_REVISION last. */
export function buildConfigVars(n: NodeConfigInput): Record<string, string> {
  const vars: Record<string, string> = {
    VC_NAME: n.vcName,
    VC_NAMESPACE: n.namespace,
    VC_NODE_NAME: n.nodeName,
    VC_NODE_INDEX: String(n.index),
    VC_NODE_IP: n.ip,
    VC_SUBNET: n.subnet,
    VC_PREFIX: n.subnet.split('/')[1] ?? '',
    VC_GATEWAY: n.gateway,
    VC_PEERS: n.peers.join(' '),
    VC_NODES: String(n.peers.length),
    VC_HOSTNAME: n.nodeName,
    VC_SWAP_DEVICE: SWAP_DEVICE,
    VC_SHARED_MOUNT: n.hasShared ? SHARED_MOUNT : '',
    VC_SHARED_TAG: SHARED_TAG,
  };
  // Only VCs served over NFS get the variable: the bytes (and so the revision) of the others stay
  // as they were, and their guests do not restart for a configuration change they would not see.
  if (n.hasShared && n.sharedNfs) vars.VC_SHARED_NFS = sharedNfsSource(n.gateway, n.namespace, n.vcName);
  const digest = createHash('sha256')
    .update(renderConfigEnv(vars))
    .update('\0')
    .update(n.firstBootScript ?? '')
    .digest('hex');
  vars.VC_CONFIG_REVISION = digest.slice(0, 16);
  return vars;
}

/** One `KEY='value'` line per variable, shell-sourceable (a `'` in a value becomes `'\''`). */
export function renderConfigEnv(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) => `${k}='${v.replace(/'/g, `'\\''`)}'\n`)
    .join('');
}

interface TarEntry {
  name: string;
  mode: number;
  /** undefined: a directory. */
  content?: Buffer;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(e: TarEntry): Buffer {
  const h = Buffer.alloc(512);
  if (Buffer.byteLength(e.name) > 100) throw new Error(`tar entry name too long: ${e.name}`);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(e.content?.length ?? 0, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime: fixed, for deterministic bytes
  h.write(' '.repeat(8), 148, 'ascii'); // checksum placeholder
  h.write(e.content === undefined ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/**
 * A ustar archive of `entries` that fits a disk of `sizeBytes` (with the two zero blocks that end
 * it). Only the entries come back: the rest of the disk is zeros, which the storage driver writes
 * (StorageDriver.writeConfig's sizeBytes), so 1 MiB of zeros is never held here per disk.
 */
export function buildUstar(entries: TarEntry[], sizeBytes: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.content) {
      parts.push(e.content);
      const pad = (512 - (e.content.length % 512)) % 512;
      parts.push(Buffer.alloc(pad));
    }
  }
  // Two zero blocks end the archive; the rest of the disk is zeros too.
  parts.push(Buffer.alloc(1024));
  const body = Buffer.concat(parts);
  if (body.length > sizeBytes) {
    throw new Error(
      `the first-boot configuration (${body.length - 1024} bytes) does not fit the ${sizeBytes}-byte config disk: shorten spec.firstBoot.script`,
    );
  }
  return body;
}

/**
 * The config disk of one node: `bytes` then zeros up to `sizeBytes` (CONFIG_DISK_BYTES). The
 * zeros are the driver's to write: at 10,000 VMs a zero-padded 1 MiB Buffer per disk, 4 per VC in
 * flight on 64 storage workers, was 260-270 MiB of vc-manager's memory, and glibc kept the freed
 * 1 MiB chunks (hack/bench-scale, session 13).
 */
export function buildConfigDisk(n: NodeConfigInput): { bytes: Buffer; sizeBytes: number; env: string; revision: string } {
  const vars = buildConfigVars(n);
  const env = renderConfigEnv(vars);
  const bytes = buildUstar(
    [
      { name: 'vc/', mode: 0o755 },
      { name: 'vc/config.env', mode: 0o644, content: Buffer.from(env, 'utf8') },
      { name: 'vc/firstboot.sh', mode: 0o755, content: Buffer.from(n.firstBootScript ?? '', 'utf8') },
    ],
    CONFIG_DISK_BYTES,
  );
  return { bytes, sizeBytes: CONFIG_DISK_BYTES, env, revision: vars.VC_CONFIG_REVISION! };
}
