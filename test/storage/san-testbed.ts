// A full testbed (`hack/testbed up --full`, QEMU TCG nodes running Xen with a Debian dom0) for
// the SAN storage tests: nodes (two by default) sharing one raw SAN disk, SSH transports to them with pinned
// host keys, a template on the shared directory, and block-level helpers that run on a node
// (O_DIRECT, so no page cache of one node hides what another wrote).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import type { VolumeInfo } from '../../drivers/storage/types.js';
import { execOk, type ExecResult, type Transport } from '../../drivers/transport/types.js';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import type { ConformanceHarness } from './driver-conformance.js';
import { makeTemplate } from './storage-fixtures.js';

// a node under TCG on a loaded machine takes seconds per process and per SSH handshake
const SLOW = { connectTimeoutMs: 120_000, keepaliveIntervalMs: 40_000 };
const KiB = 1024;

export interface SanTestbed {
  dir: string;
  tb: TestbedState;
  /** One transport per node, in node order (blade1, blade2). */
  nodes: SshTransport[];
  /** A template whose every byte is 0x11, on the shared directory (same path on the nodes). */
  template: string;
  templateBytes: number;
  down(): Promise<void>;
}

export async function sanTestbedUp(opts: { sanMiB: number; templateBytes: number; nodes?: number }): Promise<SanTestbed> {
  const base = await mkdtemp(join(tmpdir(), 'vl-san-'));
  const dir = join(base, 'tb');
  const nodes: SshTransport[] = [];
  const down = async (): Promise<void> => {
    await Promise.all(nodes.map((t) => t.close().catch(() => undefined)));
    await testbedDown(dir).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  };
  try {
    const tb = await testbedUp({ nodes: opts.nodes ?? 2, dir, full: { sanMiB: opts.sanMiB, bootTimeoutMs: 600_000 } });
    for (const n of tb.nodes) {
      nodes.push(new SshTransport({ host: n.name, address: n.address, port: n.port, identityFile: tb.identityFile, hostKey: n.hostKey, ...SLOW }));
    }
    const template = join(tb.sanDir, 'templates', 'base.qcow2');
    await execOk(nodes[0]!, ['mkdir', '-p', join(tb.sanDir, 'templates')]);
    await makeTemplate(template, opts.templateBytes, 'qcow2');
    return { dir, tb, nodes, template, templateBytes: opts.templateBytes, down };
  } catch (e) {
    await down();
    throw e;
  }
}

// Each block check is one command on the node (a process start costs much under TCG). A script
// exits ABSENT when the device does not exist there, so a caller can map it and try once more.
const ABSENT = 3;
const T = { timeoutMs: 180_000 };
const WRITE_SCRIPT =
  '[ -b "$1" ] || exit 3; dd if=/dev/zero bs=64K count=1 status=none | tr "\\000" "$2" | dd of="$1" bs=64K seek="$3" oflag=direct conv=notrunc status=none';
const HOLDS_SCRIPT =
  '[ -b "$1" ] || exit 3; dd if="$1" bs=64K skip="$2" count=1 iflag=direct status=none | od -An -tx1 -v | tr -s " \\n" "\\n\\n" | sort -u';
/** Exits 0 when the kernel maps the device read-only and a write to it fails. */
const READ_ONLY_SCRIPT =
  '[ -b "$1" ] || exit 3; [ "$(blockdev --getro "$1")" = 1 ] || exit 1; ' +
  'dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct conv=notrunc status=none 2>/dev/null && exit 1; exit 0';
const SWAP_SCRIPT = '[ -b "$1" ] || exit 3; blkid -p -o value -s TYPE "$1"';

const octal = (byte: number): string => `\\${byte.toString(8).padStart(3, '0')}`;
const blocks = (offset: number): string => String(offset / (64 * KiB));
const holdsOut = (r: ExecResult, byte: number): boolean => {
  const values = r.stdout.split('\n').filter(Boolean);
  return r.code === 0 && values.length === 1 && values[0] === byte.toString(16).padStart(2, '0');
};
const writeOk = (t: Transport, dev: string, r: ExecResult): void => {
  if (r.code !== 0) throw new Error(`${t.host}: write to ${dev} failed (${r.code}): ${r.stderr.trim()}`);
};

/** Writes 64 KiB of `byte` at `offset` (a multiple of 64 KiB) into block device `dev` on node `t`. */
export async function blockWrite(t: Transport, dev: string, offset: number, byte: number): Promise<void> {
  writeOk(t, dev, await t.exec(['sh', '-c', WRITE_SCRIPT, 'sh', dev, octal(byte), blocks(offset)], T));
}

/** Whether the 64 KiB at `offset` of `dev` on node `t` all hold `byte` (read with O_DIRECT). */
export async function blockHolds(t: Transport, dev: string, offset: number, byte: number): Promise<boolean> {
  return holdsOut(await t.exec(['sh', '-c', HOLDS_SCRIPT, 'sh', dev, blocks(offset)], T), byte);
}

/** Whether the kernel of node `t` maps `dev` read-only and refuses a write to it. */
export async function blockReadOnly(t: Transport, dev: string): Promise<boolean> {
  return (await t.exec(['sh', '-c', READ_ONLY_SCRIPT, 'sh', dev], T)).code === 0;
}

/**
 * The conformance harness's block checks on node `t`, each one command there. `map`, when given,
 * maps a volume whose device does not exist on `t` (a driver with per-node activation) and
 * returns its device; the check then runs once more on it.
 */
export function blockChecks(
  t: Transport,
  map?: (info: VolumeInfo) => Promise<string>,
): Pick<ConformanceHarness, 'write' | 'holds' | 'isReadOnly' | 'isSwap'> {
  const on = async (info: VolumeInfo, script: string, ...args: string[]): Promise<ExecResult> => {
    const r = await t.exec(['sh', '-c', script, 'sh', info.path, ...args], T);
    if (r.code !== ABSENT || !map) return r;
    return t.exec(['sh', '-c', script, 'sh', await map(info), ...args], T);
  };
  return {
    write: async (info, offset, byte) => writeOk(t, info.path, await on(info, WRITE_SCRIPT, octal(byte), blocks(offset))),
    holds: async (info, offset, byte) => holdsOut(await on(info, HOLDS_SCRIPT, blocks(offset)), byte),
    isReadOnly: async (info) => (await on(info, READ_ONLY_SCRIPT)).code === 0,
    isSwap: async (info) => (await on(info, SWAP_SCRIPT)).stdout.trim() === 'swap',
  };
}

/** Device-mapper names on node `t` that contain `part`. */
export async function dmNames(t: Transport, part: string): Promise<string[]> {
  const out = await execOk(t, ['dmsetup', 'ls'], { timeoutMs: 180_000 });
  return out.split('\n').map((l) => l.split(/\s+/)[0]!).filter((n) => n && n.includes(part));
}
