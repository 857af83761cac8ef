// Builds the image of a full testbed node (`hack/testbed up --full`): a Debian 12 root filesystem
// made by mmdebstrap from this machine's apt sources only (the Debian kernel with all its modules,
// Xen 4.17's hypervisor and tools, OpenSSH, LVM, thin-provisioning-tools, dmsetup, OCFS2 tools, the
// kernel NFS server, nftables, iproute2, qemu-utils, Debian's QEMU system emulator for x86 without
// its recommends, udev), the boot scripts of hack/node/, the
// hypervisor gunzipped to the multiboot ELF QEMU's -kernel takes, and a small initramfs (static
// busybox and the modules that reach the root disk), so a node boots in seconds under TCG.
//
// Usage: hack/node-image build [--out DIR] [--force]      (DIR default ~/.cache/virtualinux/node)
//
// Outputs in DIR: xen, vmlinuz, initrd.img, root.img (raw ext4, sparse: the backing file of every
// node's qcow2 overlay), node-image.json (versions and the paths above). Idempotent, in two stages:
// DIR/rootfs is mmdebstrap's tree, kept with DIR/rootfs.key (a hash of the suite, the package list
// and the candidate version of each named package): it is made again only when that changes.
// DIR/.build-key adds the static busybox, hack/node/* and this file: a build with the same key and
// all outputs present does nothing; a change of the boot scripts only re-customizes the tree (in
// place: every step is idempotent) and re-makes root.img (about 20 s). Outputs are written under
// temporary names and renamed: a running node keeps its open backing file.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxPath, orderModules, writeInitramfs } from './guest-image.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = path.resolve(here, '../node');

export const NODE_SUITE = 'bookworm';
/**
 * What a node is made of (and, by dependencies, what else mmdebstrap installs). tiny-initramfs
 * satisfies the kernel's need for an initramfs generator in place of initramfs-tools, whose
 * mkinitramfs ran twice during the build and took minutes of it on a loaded machine; the node boots
 * with hack/node/init anyway. qemu-system-x86 lets QemuDriver run beside Xen on the same node
 * (`hack/bench-hypervisor --xen`: TCG guests inside dom0); mmdebstrap installs no Recommends, so
 * it comes without qemu-system-gui, ovmf and qemu-block-extra.
 */
export const NODE_PACKAGES = [
  'linux-image-amd64', 'tiny-initramfs', 'xen-hypervisor-4.17-amd64', 'xen-utils-4.17', 'openssh-server',
  'lvm2', 'thin-provisioning-tools', 'dmsetup', 'ocfs2-tools', 'nfs-kernel-server', 'nftables',
  'iproute2', 'qemu-utils', 'qemu-system-x86', 'kmod', 'udev', 'busybox', 'procps', 'e2fsprogs',
];
/** Modules in the initramfs: just what reaches the root disk; rcS loads the rest from it. */
export const NODE_INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'ext4', 'crc32c_generic'];
/** Size of the root filesystem (sparse; a node's writes go to its overlay). */
export const NODE_ROOT_MIB = 4096;

export interface NodeImage {
  dir: string;
  /** Xen, the multiboot ELF (QEMU -kernel). */
  xen: string;
  /** dom0's kernel (bzImage) and the small initramfs. */
  kernel: string;
  initrd: string;
  /** The raw ext4 root filesystem, backing file of each node's overlay. */
  root: string;
  kernelVersion: string;
  xenVersion: string;
  cached: boolean;
}

export interface NodeImageOptions {
  out?: string;
  force?: boolean;
  log?: (msg: string) => void;
}

export function defaultNodeImageDir(): string {
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'virtualinux', 'node');
}

function run(argv: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`node-image: \`${argv.join(' ')}\` failed: ${(e.stderr ?? '').trim().slice(-3000)}`, { cause: err });
  }
}

/** "pkg=candidate" for each named package, from apt's cache (apt-get update once if it knows none). */
function candidateVersions(log: (m: string) => void): string[] {
  const read = (): string[] => {
    const out = run(['apt-cache', 'policy', ...NODE_PACKAGES]);
    const versions: string[] = [];
    for (const block of out.split(/\n(?=\S)/)) {
      const name = /^(\S+):/.exec(block)?.[1];
      const cand = /Candidate: (\S+)/.exec(block)?.[1];
      if (name && cand && cand !== '(none)') versions.push(`${name}=${cand}`);
    }
    return versions;
  };
  let v = read();
  if (v.length < NODE_PACKAGES.length) {
    log('apt does not know every node package; running apt-get update');
    run(['apt-get', 'update', '-q']);
    v = read();
  }
  const missing = NODE_PACKAGES.filter((p) => !v.some((x) => x.startsWith(`${p}=`)));
  if (missing.length) {
    throw new Error(`node-image: no installable ${missing.join(', ')}; check /etc/apt/sources.list (Debian 12 main)`);
  }
  return v.sort();
}

const MMDEBSTRAP_OPTIONS = ['--variant=minbase', '--dpkgopt=path-exclude=/usr/share/doc/*',
  '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/locale/*'];

function rootfsKey(versions: string[]): string {
  const h = createHash('sha256');
  for (const p of [NODE_SUITE, ...MMDEBSTRAP_OPTIONS, ...versions]) h.update(p).update('\0');
  return h.digest('hex').slice(0, 32);
}

function buildKey(rootKey: string, busybox: string): string {
  const h = createHash('sha256');
  h.update(rootKey).update('\0');
  h.update(run([busybox]).split('\n')[0] ?? '').update('\0');
  for (const f of fs.readdirSync(nodeDir).sort()) h.update(f).update(fs.readFileSync(path.join(nodeDir, f)));
  h.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex').slice(0, 32);
}

/** The boot scripts, the static busybox, sshd's settings; the image's own host keys removed. */
function customize(root: string, busybox: string): void {
  const put = (rel: string, from: string, mode: number): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.copyFileSync(from, path.join(root, rel));
    fs.chmodSync(path.join(root, rel), mode);
  };
  put('usr/lib/virtualinux/busybox', busybox, 0o755);
  put('etc/vl-node/rcS', path.join(nodeDir, 'rcS'), 0o755);
  put('etc/vl-node/rcK', path.join(nodeDir, 'rcK'), 0o755);
  put('etc/inittab', path.join(nodeDir, 'inittab'), 0o644);
  // every node gets its own host key from its config disk at boot: none is baked into the image
  for (const f of fs.readdirSync(path.join(root, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) fs.rmSync(path.join(root, 'etc/ssh', f));
  }
  fs.mkdirSync(path.join(root, 'etc/ssh/sshd_config.d'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/ssh/sshd_config.d/virtualinux.conf'), [
    '# written by hack/node-image: root logs in with the testbed key only',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'MaxSessions 20',
    'ClientAliveInterval 15',
    '',
  ].join('\n'));
  fs.writeFileSync(path.join(root, 'etc/fstab'), '');
  // sshd runs every command through root's shell: dash starts much faster than bash under TCG
  const passwd = path.join(root, 'etc/passwd');
  fs.writeFileSync(passwd, fs.readFileSync(passwd, 'utf8').replace(/^(root:[^:]*:0:0:[^:]*:[^:]*:)\/bin\/bash$/m, '$1/bin/sh'));
  fs.writeFileSync(path.join(root, 'etc/machine-id'), '');
  // Debian's initramfs is not used (hack/node/init is): it only takes space
  for (const f of fs.readdirSync(path.join(root, 'boot'))) {
    if (f.startsWith('initrd.img-')) fs.rmSync(path.join(root, 'boot', f));
  }
  fs.rmSync(path.join(root, 'var/cache/apt'), { recursive: true, force: true });
  fs.rmSync(path.join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
}

export function buildNodeImage(opts: NodeImageOptions = {}): NodeImage {
  const log = opts.log ?? ((m: string) => process.stderr.write(`node-image: ${m}\n`));
  const dir = path.resolve(opts.out ?? defaultNodeImageDir());
  fs.mkdirSync(dir, { recursive: true });
  const busybox = busyboxPath();
  const versions = candidateVersions(log);
  const rootKey = rootfsKey(versions);
  const key = buildKey(rootKey, busybox);
  const manifestPath = path.join(dir, 'node-image.json');
  const files = { xen: path.join(dir, 'xen'), kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), root: path.join(dir, 'root.img') };
  const keyFile = path.join(dir, '.build-key');
  if (!opts.force && fs.existsSync(keyFile) && fs.readFileSync(keyFile, 'utf8').trim() === key &&
    [manifestPath, ...Object.values(files)].every((f) => fs.existsSync(f))) {
    const m = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { kernelVersion: string; xenVersion: string };
    log(`up to date in ${dir} (kernel ${m.kernelVersion}, Xen ${m.xenVersion})`);
    return { dir, ...files, kernelVersion: m.kernelVersion, xenVersion: m.xenVersion, cached: true };
  }

  // the work directory beside the output: the same filesystem, so the renames below are atomic
  const work = fs.mkdtempSync(path.join(dir, '.work-'));
  const t0 = Date.now();
  try {
    const root = path.join(dir, 'rootfs');
    const rootKeyFile = path.join(dir, 'rootfs.key');
    if (opts.force || !fs.existsSync(rootKeyFile) || fs.readFileSync(rootKeyFile, 'utf8').trim() !== rootKey) {
      log(`mmdebstrap ${NODE_SUITE} with ${NODE_PACKAGES.join(',')}`);
      fs.rmSync(rootKeyFile, { force: true });
      fs.rmSync(root, { recursive: true, force: true });
      const fresh = path.join(work, 'rootfs');
      run(['mmdebstrap', '--quiet', ...MMDEBSTRAP_OPTIONS, `--include=${NODE_PACKAGES.join(',')}`, NODE_SUITE, fresh]);
      fs.renameSync(fresh, root);
      fs.writeFileSync(rootKeyFile, rootKey + '\n');
      log(`root filesystem in ${Math.round((Date.now() - t0) / 1000)} s`);
    }
    const vmlinuz = fs.readdirSync(path.join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`node-image: no /boot/vmlinuz-* in the root filesystem ${root}`);
    const kernelVersion = vmlinuz.slice('vmlinuz-'.length);
    const xenGz = fs.readdirSync(path.join(root, 'boot')).find((f) => /^xen-4\.17.*\.gz$/.test(f));
    if (!xenGz) throw new Error(`node-image: no /boot/xen-4.17*.gz in the root filesystem ${root}`);
    const xenVersion = /xen-hypervisor-4\.17-amd64=(\S+)/.exec(versions.join(' '))?.[1] ?? '4.17';

    const tmp = (f: string): string => `${f}.tmp-${process.pid}`;
    // QEMU's -kernel takes Xen's multiboot ELF, not the gzip Debian ships
    run(['sh', '-c', 'gzip -dc "$1" > "$2"', 'sh', path.join(root, 'boot', xenGz), tmp(files.xen)]);
    fs.copyFileSync(path.join(root, 'boot', vmlinuz), tmp(files.kernel));
    const modDir = path.join(root, 'lib/modules', kernelVersion);
    const order = orderModules(fs.readFileSync(path.join(modDir, 'modules.dep'), 'utf8'),
      fs.readFileSync(path.join(modDir, 'modules.builtin'), 'utf8'), NODE_INITRAMFS_MODULES);
    writeInitramfs(work, modDir, order, busybox, tmp(files.initrd), path.join(nodeDir, 'init'));
    customize(root, busybox);
    run(['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'vlnode', '-E', 'root_owner=0:0', '-d', root, tmp(files.root), `${NODE_ROOT_MIB}M`]);
    fs.writeFileSync(tmp(manifestPath), JSON.stringify({ kernelVersion, xenVersion, packages: versions, ...files }, null, 2) + '\n');
    for (const f of [...Object.values(files), manifestPath]) fs.renameSync(tmp(f), f);
    fs.writeFileSync(keyFile, key + '\n');
    log(`built in ${dir}: kernel ${kernelVersion}, Xen ${xenVersion}, initramfs with ${order.length} modules, in ${Math.round((Date.now() - t0) / 1000)} s`);
    return { dir, ...files, kernelVersion, xenVersion, cached: false };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function main(argv: string[]): void {
  const usage = 'usage: hack/node-image build [--out DIR] [--force]';
  if (argv[0] !== 'build') {
    process.stderr.write(usage + '\n');
    process.exit(2);
  }
  let out: string | undefined;
  let force = false;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && argv[i + 1]) out = argv[++i];
    else if (a === '--force') force = true;
    else {
      process.stderr.write(`node-image: unknown argument ${a}\n${usage}\n`);
      process.exit(2);
    }
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('node-image: run as root (mmdebstrap makes a root-owned tree; apt-get update)\n');
    process.exit(1);
  }
  try {
    const r = buildNodeImage({ out: out ? path.resolve(process.env.VC_CALLER_CWD ?? '.', out) : undefined, force });
    process.stdout.write(`${r.dir}\n`);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
