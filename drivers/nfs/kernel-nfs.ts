// Exports of the kernel NFS server (knfsd, Debian's nfs-kernel-server) on one node: how a full
// node re-exports a VC's OCFS2 shared volume to its guests (paper, section 4.2; docs/adr/0007).
// nfs-ganesha (nfs-server.ts) serves the namespace nodes, which have no kernel of their own; the
// two never run on one node (both want TCP 2049).
//
// Contract:
// - knfsdExport(t, e) exports directory e.path to the one subnet e.clients, NFSv4 only, read-write,
//   root not squashed, `fsid` = e.fsid (a UUID: give the same on every node that exports the same
//   filesystem, so a guest's file handles stay valid when it moves to another node). Starts the
//   server first when it does not run (nfsd threads, rpc.mountd; NFSv4 grace period 10 s), with
//   file leases off on the node (fs.leases-enable=0), so the server hands out no delegations: the
//   exported OCFS2 volume is served by every node that runs a VM of the VC, each server knows only
//   the opens made through it, and a read delegation it granted would never be recalled by a
//   write through another node (its client would read its cached copy for as long as it holds it).
//   Idempotent: exported already with the same options is a no-op. Refused (NfsExportError,
//   nothing exported): e.path is not a mount point (the shared volume must be mounted first), or a
//   value fails validation. A failure after the server started leaves it running with no new export.
// - knfsdUnexport(t, path) removes every export of `path`; when no export is left it stops the
//   server's threads and rpc.mountd (rpcbind, stateless, stays). Not exported: no-op.
// - knfsdExports(t) lists what the kernel exports (from /var/lib/nfs/etab) and whether nfsd runs.
// Every value reaches the node as an argv element, validated first.

import { NamedError } from '../../api/errors.js';
import type { Transport } from '../transport/types.js';

export class NfsExportError extends NamedError {}

export interface KernelNfsExport {
  /** An absolute path on the node: the mounted filesystem to export. */
  path: string;
  /** The one IPv4 subnet (CIDR) whose hosts may mount it. */
  clients: string;
  /** The export's filesystem id: a UUID (8-4-4-4-12 hex digits). */
  fsid: string;
}

export interface KernelNfsState {
  /** nfsd threads running. */
  threads: number;
  exports: { path: string; clients: string; options: string[] }[];
}

const PATH = /^\/[A-Za-z0-9._/@+,:=-]*$/;
const CIDR = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkPath(path: string): void {
  if (!PATH.test(path) || path.split('/').some((s) => s === '..') || path.length > 1000) {
    throw new NfsExportError(`NFS export path ${JSON.stringify(path)} must be an absolute path of letters, digits and ._/@+,:=- without ".."`);
  }
}

export function validateExport(e: KernelNfsExport): void {
  checkPath(e.path);
  if (!CIDR.test(e.clients)) throw new NfsExportError(`NFS export ${e.path}: clients ${JSON.stringify(e.clients)} must be an IPv4 CIDR`);
  if (!UUID.test(e.fsid)) throw new NfsExportError(`NFS export ${e.path}: fsid ${JSON.stringify(e.fsid)} must be a UUID`);
}

/** The export options (exports(5)); the same as ganesha's: NFSv4 over TCP, rw, no root squash. */
export function exportOptions(e: KernelNfsExport): string {
  return `rw,sync,no_subtree_check,no_root_squash,fsid=${e.fsid.toLowerCase()}`;
}

// $1 path, $2 clients, $3 options. Exit 3: refused.
const EXPORT_SCRIPT = String.raw`
set -e
p="$1"; clients="$2"; opts="$3"
mountpoint -q "$p" || { echo "$p is not a mount point: mount the shared volume before exporting it" >&2; exit 3; }
modprobe nfsd
mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd
mkdir -p /var/lib/nfs/v4recovery /run/rpcbind
echo 0 > /proc/sys/fs/leases-enable
if [ "$(cat /proc/fs/nfsd/threads)" = 0 ]; then
  echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null || true
  pgrep -x rpcbind >/dev/null || rpcbind -w
  rpc.nfsd -N 3 4
fi
pgrep -x rpc.mountd >/dev/null || rpc.mountd -N 3
exportfs -i -o "$opts" "$clients:$p"
`;

const UNEXPORT_SCRIPT = String.raw`
set -e
p="$1"
[ -f /var/lib/nfs/etab ] || exit 0
awk -v p="$p" '$1 == p { sub(/\(.*/, "", $2); print $2 }' /var/lib/nfs/etab | while read -r c; do exportfs -u "$c:$p"; done
if [ ! -s /var/lib/nfs/etab ] && [ -e /proc/fs/nfsd/threads ] && [ "$(cat /proc/fs/nfsd/threads)" != 0 ]; then
  rpc.nfsd 0
  pkill -x rpc.mountd || true
fi
`;

/** Prints nfsd's thread count and the kernel's exports (`threads N`, `export <etab line>`); parseKnfsdState reads it. */
export const KNFSD_STATE_SCRIPT = String.raw`
if [ -e /proc/fs/nfsd/threads ]; then echo "threads $(cat /proc/fs/nfsd/threads)"; else echo "threads 0"; fi
[ -f /var/lib/nfs/etab ] && sed 's/^/export /' /var/lib/nfs/etab
true
`;

async function runScript(t: Transport, what: string, script: string, args: string[]): Promise<string> {
  const r = await t.exec(['sh', '-c', script, 'sh', ...args], { timeoutMs: 0 });
  if (r.code !== 0) throw new NfsExportError(`${t.host}: ${what}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000) || `exited ${r.code}`}`);
  return r.stdout;
}

export async function knfsdExport(t: Transport, e: KernelNfsExport): Promise<void> {
  validateExport(e);
  await runScript(t, `export ${e.path} to ${e.clients}`, EXPORT_SCRIPT, [e.path, e.clients, exportOptions(e)]);
}

export async function knfsdUnexport(t: Transport, path: string): Promise<void> {
  checkPath(path);
  await runScript(t, `unexport ${path}`, UNEXPORT_SCRIPT, [path]);
}

export async function knfsdExports(t: Transport): Promise<KernelNfsState> {
  return parseKnfsdState(await runScript(t, 'read the kernel NFS exports', KNFSD_STATE_SCRIPT, []));
}

/** What KNFSD_STATE_SCRIPT printed (other lines are ignored). Pure. */
export function parseKnfsdState(out: string): KernelNfsState {
  const s: KernelNfsState = { threads: 0, exports: [] };
  for (const line of out.split('\n')) {
    if (line.startsWith('threads ')) s.threads = Number(line.slice(8));
    const m = /^export (\S+)\s+([^(\s]+)\((.*)\)$/.exec(line);
    if (m) s.exports.push({ path: m[1]!, clients: m[2]!, options: m[3]!.split(',') });
  }
  return s;
}
