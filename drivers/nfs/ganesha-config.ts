// The nfs-ganesha configuration that serves a node's NFS exports: NFSv4 only, over TCP 2049, VFS
// backend, each export open to one client subnet and nobody else. Pure (golden-tested).
//
// Export_Id: NFS file handles embed the export id, so a VC's id must not change when other VCs'
// exports come and go (a reload would turn the guests' handles stale) and must be the same on
// every node (after a live migration the guest presents its handles to the target's ganesha).
// It is therefore derived from the pseudo path alone (a hash into 1..65534), not from its rank.
// Two pseudo paths hashing alike are resolved by probing upwards in pseudo-path order, which is
// the same on nodes that serve the same set; a collision is about one in 65 000 per pair.

import { createHash } from 'node:crypto';

export interface NfsExport {
  /** The NFSv4 pseudo path the clients mount, e.g. `/vc/<namespace>/<vc>`. */
  pseudo: string;
  /** The directory on the node that is served. */
  path: string;
  /** The one subnet (CIDR) whose hosts may mount it, read-write. */
  clients: string;
}

export interface GaneshaPaths {
  /** NFSv4 client recovery records (RecoveryBackend = fs). */
  recoveryRoot: string;
}

export const NFS_PORT = 2049;
const MAX_EXPORT_ID = 65534;

/** A config value ganesha reads back unchanged inside double quotes, and which is an absolute path. */
function checkPath(what: string, value: string): void {
  if (!/^\/[A-Za-z0-9._/@+,:=-]*$/.test(value) || value.split('/').some((s) => s === '..')) {
    throw new Error(`NFS ${what} ${JSON.stringify(value)} must be an absolute path of letters, digits and ._/@+,:=- without ".."`);
  }
}

function checkCidr(value: string): void {
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(value)) throw new Error(`NFS clients ${JSON.stringify(value)} must be an IPv4 CIDR`);
}

function hashId(pseudo: string): number {
  return (createHash('sha256').update(pseudo).digest().readUInt32BE(0) % MAX_EXPORT_ID) + 1;
}

/** Export ids by pseudo path (see the header for why they are hashes). */
export function exportIds(exports: readonly NfsExport[]): Map<string, number> {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  for (const pseudo of [...new Set(exports.map((e) => e.pseudo))].sort()) {
    let id = hashId(pseudo);
    while (used.has(id)) id = (id % MAX_EXPORT_ID) + 1;
    used.add(id);
    ids.set(pseudo, id);
  }
  return ids;
}

/** Sorted by pseudo path; throws on a duplicate pseudo path or a value unsafe for the config. */
export function normalizeExports(exports: readonly NfsExport[]): NfsExport[] {
  const sorted = [...exports].sort((a, b) => (a.pseudo < b.pseudo ? -1 : a.pseudo > b.pseudo ? 1 : 0));
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    checkPath('pseudo path', e.pseudo);
    checkPath('export path', e.path);
    checkCidr(e.clients);
    if (e.pseudo === '/') throw new Error('NFS pseudo path "/" is the pseudo root: export under it');
    if (i > 0 && sorted[i - 1]!.pseudo === e.pseudo) throw new Error(`NFS pseudo path ${e.pseudo} is exported twice`);
  }
  return sorted;
}

export function renderGaneshaConfig(exports: readonly NfsExport[], paths: GaneshaPaths): string {
  checkPath('recovery root', paths.recoveryRoot);
  const sorted = normalizeExports(exports);
  const ids = exportIds(sorted);
  const lines = [
    '# Written by VirtuaLinux (drivers/nfs): do not edit, it is replaced whole.',
    `NFS_CORE_PARAM { Protocols = 4; NFS_Port = ${NFS_PORT}; Enable_NLM = false; Enable_RQUOTA = false; }`,
    `NFSv4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "${paths.recoveryRoot}"; }`,
    'NFS_KRB5 { Active_krb5 = false; }',
    // The export list is logged after each start and reload: the driver reads what is served there.
    'LOG { COMPONENTS { EXPORT = INFO; } }',
  ];
  for (const e of sorted) {
    lines.push(
      'EXPORT {',
      `  Export_Id = ${ids.get(e.pseudo)}; Path = "${e.path}"; Pseudo = "${e.pseudo}";`,
      '  Access_Type = None; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;',
      `  CLIENT { Clients = ${e.clients}; Access_Type = RW; Protocols = 4; }`,
      '  FSAL { Name = VFS; }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}
