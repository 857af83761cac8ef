// Full testbed nodes (`hack/testbed up --full`): each node is a QEMU (TCG) machine booting Xen 4.17
// with the node image (hack/lib/node-image.ts) as its PV dom0, instead of a network namespace.
//
// Per node, in DIR/nodes/<name>/: overlay.qcow2 (its root disk, copy-on-write over the cached
// image's root.img), config.img (a small ext4 disk: its SSH host key and the login key), console.log
// (Xen's and dom0's serial console), qemu.log, qemu.pid, qmp.sock. The QEMUs run in the testbed's
// bridge namespace (`ip netns exec vl-<id>-br`), each with a tap `n<i>` on br0 made before it
// starts; the node's address (198.18.K.1x/24) is set by its rcS from the kernel command line, so the
// root namespace reaches its sshd through the testbed's root-side veth, as it reaches namespace
// nodes. Every node has the same three virtio disks in the same order, with serials (rcS and udev
// name them /dev/disk/by-id/virtio-<serial>):
//   vl-root    the overlay (/dev/vda)
//   vl-config  the config disk (/dev/vdb, read-only)
//   vl-san     DIR/san.img, ONE raw image shared by every node (/dev/vdc; file.locking=off,
//              cache=none, share-rw=on): the SAN block device, /dev/disk/by-id/virtio-vl-san
// and the testbed's shared directory DIR/san over virtio-9p (tag vlsan) at the same path as here.
// Every node has the same CPU model (a migrated guest is sensitive to cpuid changes).
//
// QEMU's PID is recorded in testbed.json as soon as it is spawned (and by -pidfile); `down` kills
// the recorded PID when its command line still names the node's overlay, and everything else in
// the testbed's namespaces by the existing namespace sweep.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { execOk } from '../../drivers/transport/types.js';
import { buildNodeImage, defaultNodeImageDir, type NodeImage } from './node-image.js';
import { pidAlive, sshBanner } from './testbed.js';

/**
 * The CPU model every node gets: `-cpu max` makes dom0 die on an early page fault under TCG. AMD's
 * SVM with nested paging (TCG emulates both; not Intel's VMX) gives Xen HAP, which PVH guests and
 * their live migration need (log-dirty: this Xen has no shadow paging for PV guests); the SSE4,
 * AES and PCLMUL flags keep what dom0's userland had with the Haswell model used before.
 */
export const NODE_CPU_MODEL = 'qemu64,+svm,+npt,+aes,+pclmulqdq,+ssse3,+sse4.1,+sse4.2';
/** Default memory per node: three nodes fit in 6 GiB with QEMU's own overhead. */
export const DEFAULT_NODE_MEMORY_MIB = 1536;
export const DEFAULT_NODE_CPUS = 1;
export const DEFAULT_SAN_MIB = 1024;
/** The SAN block device's name on every full node. */
export const SAN_DEVICE = '/dev/disk/by-id/virtio-vl-san';
const QEMU = 'qemu-system-x86_64';

export interface FullNodeOptions {
  /** QEMU memory per node (Xen and dom0 and room for guests); default 1536. */
  memoryMiB?: number;
  /** vCPUs per node; default 1 (CPU is scarce under TCG). */
  cpus?: number;
  /** Size of the shared raw SAN image; default 1024. */
  sanMiB?: number;
  /** Where the node image is built once and reused; default ~/.cache/virtualinux/node. */
  imageDir?: string;
  /** Longest wait for every node's sshd; default 300 s. */
  bootTimeoutMs?: number;
  log?: (msg: string) => void;
}

/** What testbed.json records of a full testbed (TestbedState.full). */
export interface FullTestbedState {
  imageDir: string;
  sanImage: string;
  sanMiB: number;
  memoryMiB: number;
  /** dom0's share of memoryMiB. */
  dom0MiB: number;
  cpus: number;
}

/** What testbed.json records of a full node (TestbedNode.full). */
export interface FullNodeState {
  qemuPid: number;
  overlay: string;
  configDisk: string;
  console: string;
  qmp: string;
  tap: string;
  mac: string;
}

/** The parts of the testbed state this module reads and fills in. */
interface Testbed {
  dir: string;
  id: string;
  bridgeNetns: string;
  sanDir: string;
  identityFile: string;
  full?: FullTestbedState;
  nodes: { name: string; address: string; port: number; stateDir: string; full?: FullNodeState }[];
}

const local = new LocalTransport({ host: 'testbed' });
const run = (argv: string[]): Promise<string> => execOk(local, argv, { timeoutMs: 120_000 });

/** Validates options and the directory (paths go into QEMU option strings); fills in defaults. */
export function fullTestbedState(dir: string, opts: FullNodeOptions): FullTestbedState {
  if (/[,\s]/.test(dir)) throw new Error(`a full testbed's --dir must not contain commas or white space (QEMU option syntax): ${dir}`);
  const memoryMiB = opts.memoryMiB ?? DEFAULT_NODE_MEMORY_MIB;
  const cpus = opts.cpus ?? DEFAULT_NODE_CPUS;
  const sanMiB = opts.sanMiB ?? DEFAULT_SAN_MIB;
  if (!Number.isInteger(memoryMiB) || memoryMiB < 768 || memoryMiB > 65536) throw new Error(`--node-memory-mib must be an integer from 768 to 65536, got ${memoryMiB}`);
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new Error(`--node-cpus must be an integer from 1 to 16, got ${cpus}`);
  if (!Number.isInteger(sanMiB) || sanMiB < 16 || sanMiB > 1048576) throw new Error(`--san-mib must be an integer from 16 to 1048576, got ${sanMiB}`);
  return {
    imageDir: opts.imageDir ?? defaultNodeImageDir(),
    sanImage: join(dir, 'san.img'),
    sanMiB,
    memoryMiB,
    dom0MiB: Math.max(512, Math.floor(memoryMiB / 2)),
    cpus,
  };
}

/** A locally administered MAC, unique per testbed (id) and node index. */
function macFor(id: string, index: number): string {
  const b = [0x52, 0x54, parseInt(id.slice(0, 2), 16), parseInt(id.slice(2, 4), 16), parseInt(id.slice(4, 6), 16), index + 11];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Creates node i's tap on the testbed bridge (before its QEMU opens it). */
export async function createNodeTap(s: Testbed, index: number): Promise<void> {
  const tap = `n${index + 1}`;
  await run(['ip', '-n', s.bridgeNetns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await run(['ip', '-n', s.bridgeNetns, 'link', 'set', tap, 'master', 'br0', 'up']);
}

/** The QEMU argv of a node (without the `ip netns exec` in front). */
export function qemuArgv(s: Testbed, image: Pick<NodeImage, 'xen' | 'kernel' | 'initrd'>, index: number): string[] {
  const node = s.nodes[index]!;
  const f = node.full!;
  const full = s.full!;
  // no boot-time scrub of free memory, no speculation mitigations (each costs much under TCG, and
  // the nodes are test machines running our own guests), but eager FPU switching: with Xen's lazy
  // switching (spec-ctrl=no alone) QEMU 7.2's TCG let dom0 processes run on a domU's SIMD registers
  // once a domU ran: about half of dom0's SSH handshakes failed ("incorrect signature",
  // "Permission denied (publickey)"); with eager-fpu, none of 15 did
  const xenCmdline = `console=com1 com1=115200 dom0_mem=${full.dom0MiB}M,max:${full.dom0MiB}M dom0_max_vcpus=${full.cpus} ` +
    'bootscrub=false spec-ctrl=no,eager-fpu xpti=false pv-l1tf=false';
  const dom0Cmdline = `console=hvc0 root=/dev/vda rw quiet vl.name=${node.name} vl.addr=${node.address}/24 vl.san=${s.sanDir}`;
  return [
    QEMU, '-name', `vl-${s.id}-${node.name}`,
    '-machine', 'q35', '-accel', 'tcg,tb-size=256', '-cpu', NODE_CPU_MODEL,
    '-m', String(full.memoryMiB), '-smp', String(full.cpus),
    '-kernel', image.xen, '-append', xenCmdline,
    // multiboot modules: "<file> <cmdline>" separated by commas
    '-initrd', `${image.kernel} ${dom0Cmdline},${image.initrd}`,
    '-drive', `file=${f.overlay},format=qcow2,if=none,id=root`,
    '-device', 'virtio-blk-pci,drive=root,serial=vl-root',
    '-drive', `file=${f.configDisk},format=raw,if=none,id=config,readonly=on`,
    '-device', 'virtio-blk-pci,drive=config,serial=vl-config',
    '-drive', `file=${full.sanImage},format=raw,if=none,id=san,file.locking=off,cache=none`,
    '-device', 'virtio-blk-pci,drive=san,serial=vl-san,share-rw=on',
    '-netdev', `tap,id=net0,ifname=${f.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=net0,mac=${f.mac}`,
    '-fsdev', `local,id=sanfs,path=${s.sanDir},security_model=passthrough`,
    '-device', 'virtio-9p-pci,fsdev=sanfs,mount_tag=vlsan',
    // entropy: without it the kernel's random pool took minutes to initialize and sshd waited on it
    '-object', 'rng-random,id=rng0,filename=/dev/urandom', '-device', 'virtio-rng-pci,rng=rng0',
    // the serial console: logged to console.log, and interactive on console.sock (root only): Xen's
    // console, CTRL-a three times switches to dom0's, where a root shell waits (`socat - UNIX:...`)
    '-chardev', `socket,id=con0,path=${join(node.stateDir, 'console.sock')},server=on,wait=off,logfile=${f.console},logappend=on`,
    '-serial', 'chardev:con0', '-display', 'none', '-vga', 'none', '-monitor', 'none',
    '-qmp', `unix:${f.qmp},server=on,wait=off`, '-pidfile', join(node.stateDir, 'qemu.pid'), '-no-reboot',
  ];
}

/**
 * Builds (or reuses) the node image, makes the SAN image and each node's overlay and config disk,
 * starts every node's QEMU and waits until every sshd answers. `save` persists the state (called
 * right after each QEMU is spawned, with its PID).
 */
export async function startFullNodes(s: Testbed, save: () => Promise<void>, opts: Pick<FullNodeOptions, 'log' | 'bootTimeoutMs'>): Promise<void> {
  const full = s.full!;
  const log = opts.log ?? (() => {});
  const image = buildNodeImage({ out: full.imageDir, log });
  await run(['qemu-img', 'create', '-q', '-f', 'raw', full.sanImage, `${full.sanMiB}M`]);
  const authorized = await readFile(join(s.dir, 'authorized_keys'));
  for (const [i, node] of s.nodes.entries()) {
    const f = node.full!;
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', image.root, f.overlay]);
    const cfg = join(node.stateDir, 'config');
    await mkdir(cfg, { recursive: true, mode: 0o700 });
    for (const k of ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']) await copyFile(join(node.stateDir, k), join(cfg, k));
    await writeFile(join(cfg, 'authorized_keys'), authorized, { mode: 0o600 });
    await chmod(join(cfg, 'ssh_host_ed25519_key'), 0o600);
    await run(['mke2fs', '-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-L', 'vlconfig', '-d', cfg, f.configDisk, '2M']);
    const argv = qemuArgv(s, image, i);
    const out = openSync(join(node.stateDir, 'qemu.log'), 'a');
    // `ip netns exec` execs QEMU in place: the child's PID is QEMU's
    const child = spawn('ip', ['netns', 'exec', s.bridgeNetns, ...argv], { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    f.qemuPid = child.pid ?? 0;
    await save();
    log(`${node.name}: QEMU ${f.qemuPid} booting Xen ${image.xenVersion} + dom0 ${image.kernelVersion}`);
  }
  const deadline = Date.now() + (opts.bootTimeoutMs ?? 300_000);
  await Promise.all(s.nodes.map((n) => waitNodeUp(n, deadline)));
}

async function waitNodeUp(node: Testbed['nodes'][number], deadline: number): Promise<void> {
  const f = node.full!;
  for (;;) {
    const consoleText = existsSync(f.console) ? readFileSync(f.console, 'latin1') : '';
    const failed = /VL-NODE-FAILED[^\n]*|Kernel panic[^\n]*|\(XEN\) Panic[^\n]*/.exec(consoleText);
    if (failed || !pidAlive(f.qemuPid) || Date.now() > deadline) {
      const why = failed ? failed[0] : !pidAlive(f.qemuPid) ? `QEMU ${f.qemuPid} exited: ${(await readFile(join(node.stateDir, 'qemu.log'), 'utf8').catch(() => '')).slice(-1000)}` : 'timed out';
      throw new Error(`full node ${node.name} did not come up (${why}); its console (${f.console}) ends:\n${consoleText.slice(-3000)}`);
    }
    // One connection at a time, given long to answer: sshd forks and re-executes itself for every
    // connection, which takes seconds under TCG; a client that gives up after 1 s and tries again
    // piled up starting sshds until the node did nothing else.
    if (/VL-NODE-READY/.test(consoleText) && (await sshBanner(node.address, node.port, 60_000))) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The recorded QEMU PIDs that are still this testbed's QEMUs (their command line names the overlay). */
export function fullNodePids(s: Pick<Testbed, 'nodes'>): number[] {
  const pids: number[] = [];
  for (const n of s.nodes) {
    const f = n.full;
    if (!f?.qemuPid) continue;
    try {
      if (readFileSync(`/proc/${f.qemuPid}/cmdline`, 'utf8').split('\0').some((a) => a.includes(f.overlay))) pids.push(f.qemuPid);
    } catch {
      // gone
    }
  }
  return pids;
}

/** The per-node state of node i of a full testbed (paths under its state directory). */
export function fullNodeState(id: string, stateDir: string, index: number): FullNodeState {
  return {
    qemuPid: 0,
    overlay: join(stateDir, 'overlay.qcow2'),
    configDisk: join(stateDir, 'config.img'),
    console: join(stateDir, 'console.log'),
    qmp: join(stateDir, 'qmp.sock'),
    tap: `n${index + 1}`,
    mac: macFor(id, index),
  };
}
