// Builds the VirtuaLinux reference guest: a Debian kernel (fetched with `apt-get download`, never
// installed on the host), an initramfs holding busybox and the kernel modules every guest needs, and
// an ext4 root disk (busybox userland, the boot scripts of hack/guest/, the NFS client's modules
// that rcS loads only for a VC with NFS shared storage) converted to qcow2, so the
// node's copy-on-write snapshot of it really is the guest's root disk. Writes DIR/ostemplate.yaml.
//
// Usage: hack/guest-image build --out DIR [--flavour amd64|cloud-amd64] [--force]
//
// Idempotent: DIR/.build-key records the inputs (kernel package version, busybox, the boot scripts,
// this file; apt's answers are kept in DIR/.apt-lookup while apt's state is unchanged: aptLookup);
// a build with the same key and all outputs present does nothing. Outputs are written
// under temporary names and renamed, so a reader (another node on the SAN) never sees a half file.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const guestDir = path.resolve(here, '../guest');

/**
 * Kernel modules the guest loads from its initramfs (with their dependencies). The Debian cloud
 * kernel lacks 9p (CONFIG_NET_9P is not set), which ADR 0002 needs for shared storage, so the
 * default flavour is the generic `amd64` kernel. Names missing from a flavour or built in are skipped.
 */
export const GUEST_MODULES = [
  'virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console', 'ext4', '9p', '9pnet_virtio',
  'crc32c_generic', 'button', 'evdev', 'xen-blkfront', 'xen-netfront', '9pnet_xen',
];

/**
 * Kernel modules of the NFSv4.1 client (nfsv4 and, by modules.dep, nfs, sunrpc, lockd, grace,
 * dns_resolver; fscache and netfs come with 9p already), for a VC whose shared storage is NFS
 * (VC_SHARED_NFS, ADR 0002). They sit on the root disk in NFS_MODULE_DIR and rcS loads them only
 * for such a VC: in the initramfs every guest would pay for loading them at each boot.
 */
export const NFS_MODULES = ['nfsv4'];
/** On the root disk: the NFS client's modules and their load order (`modules.order`). */
export const NFS_MODULE_DIR = 'lib/modules/nfs';

export const GUEST_CMDLINE = 'console=ttyS0 root=/dev/vda rw quiet panic=-1';

export interface GuestImageOptions {
  out: string;
  flavour?: string;
  force?: boolean;
  log?: (msg: string) => void;
  /** Size of the root filesystem in MiB (the snapshot may be larger; the filesystem is not grown). */
  rootMiB?: number;
}

export interface GuestImage {
  dir: string;
  /** The uncompressed ELF kernel (PVH entry point): what the OSTemplate boots. */
  kernel: string;
  /** The distribution's compressed kernel, kept for hypervisors that want a bzImage. */
  bzImage: string;
  initrd: string;
  image: string;
  cmdline: string;
  ostemplate: string;
  /**
   * The boot-loader variant: the same root file system on partition 1 of an MBR disk, with the
   * bzImage, the initramfs and EXTLINUX (Debian's extlinux package) installed in it, booted by
   * the firmware; its OSTemplate (`busybox-bootloader`) has no `boot` section.
   */
  bootloaderImage: string;
  bootloaderOstemplate: string;
  kernelVersion: string;
  /** True when the cache was up to date and nothing was built. */
  cached: boolean;
}

function run(argv: string[], opts: { cwd?: string; input?: Buffer | string } = {}): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), {
      cwd: opts.cwd,
      input: opts.input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`guest-image: \`${argv.join(' ')}\` failed: ${(e.stderr ?? '').trim()}`, { cause: err });
  }
}

/** The versioned kernel package behind the metapackage, running `apt-get update` once if apt does not know it. */
function resolveKernelPackage(flavour: string, log: (m: string) => void): { pkg: string; version: string } {
  const meta = `linux-image-${flavour}`;
  const lookup = (): { pkg: string; version: string } | undefined => {
    let deps: string;
    try {
      deps = run(['apt-cache', 'depends', meta]);
    } catch {
      return undefined;
    }
    const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(deps);
    if (!m) return undefined;
    const pol = run(['apt-cache', 'policy', m[1]!]);
    const v = /Candidate: (\S+)/.exec(pol);
    if (!v || v[1] === '(none)') return undefined;
    return { pkg: m[1]!, version: v[1]! };
  };
  let found = lookup();
  if (!found) {
    log(`apt does not know ${meta}; running apt-get update`);
    run(['apt-get', 'update', '-q']);
    found = lookup();
  }
  if (!found) {
    throw new Error(
      `guest-image: no installable ${meta} package; check /etc/apt/sources.list (Debian 12 main) and network access`,
    );
  }
  return found;
}

/** The files of hack/guest/ that go into the image (their bytes are part of the build key). */
const GUEST_FILES = ['init', 'rcS', 'rcK', 'inittab', 'vc-agent'];

function hashInputs(parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  for (const f of GUEST_FILES) h.update(fs.readFileSync(path.join(guestDir, f)));
  h.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex').slice(0, 32);
}

/** Modules to load, dependencies first, as paths relative to the kernel's module directory. */
export function orderModules(modulesDep: string, builtin: string, wanted: readonly string[]): string[] {
  const norm = (n: string): string => n.replace(/-/g, '_');
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const file = line.slice(0, i).trim();
    const rest = line.slice(i + 1).trim();
    deps.set(file, rest ? rest.split(/\s+/) : []);
    byName.set(norm(path.basename(file).replace(/\.ko(\.\w+)?$/, '')), file);
  }
  const builtins = new Set(builtin.split('\n').map((l) => norm(path.basename(l.trim()).replace(/\.ko$/, ''))));
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const d of deps.get(file) ?? []) visit(d);
    out.push(file);
  };
  for (const w of wanted) {
    const f = byName.get(norm(w));
    if (f) visit(f);
    else if (!builtins.has(norm(w))) continue; // absent from this flavour (e.g. Xen fronts): skipped
  }
  return out;
}

/**
 * Unpacks the ELF kernel from a Debian bzImage (xz or gzip payload). QEMU boots an ELF kernel with a
 * PVH note directly, skipping the decompressor, which under TCG saves about 3 s of every boot; Xen
 * boots the same file as a PVH guest.
 */
export function extractVmlinux(bzImage: string, out: string): void {
  const data = fs.readFileSync(bzImage);
  const formats: Array<[Buffer, string[]]> = [
    [Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), ['xz', '-dc']],
    [Buffer.from([0x1f, 0x8b, 0x08]), ['gzip', '-dc']],
  ];
  for (const [magic, cmd] of formats) {
    const at = data.indexOf(magic);
    if (at < 0) continue;
    // The payload is followed by setup data the decompressors call trailing garbage: they exit
    // non-zero after writing the whole kernel, so the ELF header decides, not the exit code.
    const r = spawnSync(cmd[0]!, cmd.slice(1), { input: data.subarray(at), maxBuffer: 512 * 1024 * 1024 });
    if (r.stdout && r.stdout.length > 4 && r.stdout.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
      fs.writeFileSync(out, r.stdout);
      return;
    }
  }
  throw new Error(`guest-image: cannot find an xz or gzip compressed ELF kernel inside ${bzImage}`);
}

/** A statically linked busybox of this machine (the guest's and the node image's initramfs). */
export function busyboxPath(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) {
    if (!fs.existsSync(p)) continue;
    // A dynamic busybox would need the host's libc inside the guest: only a static one will do.
    const r = spawnSync('ldd', [p], { encoding: 'utf8' });
    if (/not a dynamic executable|statically linked/.test(`${r.stdout}${r.stderr}`)) return p;
  }
  throw new Error('guest-image: a static busybox is needed: apt-get install busybox-static');
}

function writeRootTree(root: string, busybox: string, modDir: string, nfsModules: readonly string[]): void {
  const mk = (p: string, mode = 0o755): void => {
    fs.mkdirSync(path.join(root, p), { recursive: true, mode });
  };
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/init.d', 'etc/acpi/PWRF', 'proc', 'sys', 'dev',
    'run', 'tmp', 'root', 'mnt', 'shared', 'var/lib/virtualinux', 'var/log']) mk(d);
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const applet of run([busybox, '--list-full']).split('\n').filter(Boolean)) {
    const target = path.join(root, applet);
    if (applet === 'bin/busybox' || fs.existsSync(target)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync(path.relative(path.dirname(target), path.join(root, 'bin/busybox')), target);
  }
  const copy = (from: string, to: string, mode: number): void => {
    fs.copyFileSync(path.join(guestDir, from), path.join(root, to));
    fs.chmodSync(path.join(root, to), mode);
  };
  copy('rcS', 'etc/init.d/rcS', 0o755);
  copy('rcK', 'etc/init.d/rcK', 0o755);
  copy('inittab', 'etc/inittab', 0o644);
  copy('vc-agent', 'sbin/vc-agent', 0o755);
  // The serial console's root shell (inittab) reads this.
  fs.writeFileSync(path.join(root, 'etc/profile'), "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nPS1='\\h:\\w# '\n");
  fs.writeFileSync(path.join(root, 'etc/acpi/PWRF/00000080'), '#!/bin/sh\nexec /sbin/poweroff\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'etc/acpid.conf'), 'PWRF PWRF/00000080\n');
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
  fs.writeFileSync(path.join(root, 'etc/hostname'), 'guest\n');
  fs.writeFileSync(path.join(root, 'etc/fstab'), '');
  copyModules(modDir, nfsModules, path.join(root, NFS_MODULE_DIR));
}

/** Copies `order` (paths relative to modDir) flat into `to`, with `modules.order` listing their names. */
function copyModules(modDir: string, order: readonly string[], to: string): void {
  fs.mkdirSync(to, { recursive: true });
  const names = order.map((rel) => {
    const name = path.basename(rel);
    fs.copyFileSync(path.join(modDir, rel), path.join(to, name));
    return name;
  });
  fs.writeFileSync(path.join(to, 'modules.order'), names.join('\n') + '\n');
}

/** The initramfs's modules and the NFS client's (only those the initramfs does not load), in load order. */
export function guestModules(modulesDep: string, builtin: string): { boot: string[]; nfs: string[] } {
  const boot = orderModules(modulesDep, builtin, GUEST_MODULES);
  const nfs = orderModules(modulesDep, builtin, NFS_MODULES).filter((m) => !boot.includes(m));
  return { boot, nfs };
}

/** An initramfs at `out`: static busybox, `init` as /init, the modules `order` names (in /etc/modules.order). */
export function writeInitramfs(work: string, modDir: string, order: readonly string[], busybox: string, out: string,
  init = path.join(guestDir, 'init')): void {
  const ird = path.join(work, 'initramfs');
  for (const d of ['bin', 'etc', 'lib/modules', 'dev', 'proc', 'sys', 'newroot']) {
    fs.mkdirSync(path.join(ird, d), { recursive: true });
  }
  fs.copyFileSync(busybox, path.join(ird, 'bin/busybox'));
  fs.chmodSync(path.join(ird, 'bin/busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(ird, 'bin/sh'));
  fs.copyFileSync(init, path.join(ird, 'init'));
  fs.chmodSync(path.join(ird, 'init'), 0o755);
  copyModules(modDir, order, path.join(ird, 'lib/modules'));
  fs.renameSync(path.join(ird, 'lib/modules/modules.order'), path.join(ird, 'etc/modules.order'));
  // Fixed script, paths as positional parameters: cpio of the tree, gzip, to the output file.
  run(['sh', '-c', 'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6 > "$2"', 'sh', ird, out]);
}

/** The boot-loader variant's kernel command line: the root file system is the first partition. */
export const BOOTLOADER_CMDLINE = 'console=ttyS0 root=/dev/vda1 rw quiet panic=-1';
/** Debian packages of the boot-loader variant: EXTLINUX and the MBR boot code. */
const SYSLINUX_PACKAGES = ['extlinux', 'syslinux-common'];
/** Where partition 1 starts on the boot-loader variant's disk. */
const PARTITION_OFFSET = 1024 * 1024;

/** The versions apt would download of `pkgs` (part of the build key). */
/** What of apt's state the answers of aptLookup depend on: modification times of its lists, dpkg's status, its configuration. */
function aptStamp(flavour: string): string {
  const at = (p: string): string => {
    try {
      return String(fs.statSync(p).mtimeMs);
    } catch {
      return '-';
    }
  };
  return [flavour, ...['/var/lib/apt/lists', '/var/lib/dpkg/status', '/etc/apt', '/etc/apt/sources.list', '/etc/apt/sources.list.d',
    '/etc/apt/preferences.d'].map((p) => `${p}@${at(p)}`)].join(' ');
}

/**
 * apt's answers for the build key: the kernel package and its candidate version, and the boot
 * loader packages' candidates. apt-cache rebuilds its whole cache on every call where Debian keeps
 * none (docker-clean images): over 1 s of CPU each, five calls per check, which every end-to-end
 * harness start made (minutes of wall time under load). They are kept in DIR/.apt-lookup with
 * aptStamp and asked again when that changed (apt-get update, a package installed) or with force.
 */
function aptLookup(dir: string, flavour: string, force: boolean, log: (m: string) => void): { pkg: string; version: string; syslinux: string } {
  const file = path.join(dir, '.apt-lookup');
  const before = aptStamp(flavour);
  if (!force) {
    try {
      const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { stamp?: string; pkg?: string; version?: string; syslinux?: string };
      if (c.stamp === before && c.pkg && c.version && typeof c.syslinux === 'string') return { pkg: c.pkg, version: c.version, syslinux: c.syslinux };
    } catch {
      // none yet, or unreadable: ask apt
    }
  }
  const answer = { ...resolveKernelPackage(flavour, log), syslinux: candidateVersions(SYSLINUX_PACKAGES) };
  const stamp = aptStamp(flavour);
  // Kept only when apt's state did not change meanwhile (resolveKernelPackage may run apt-get update).
  if (stamp === before) {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify({ stamp, ...answer }));
    fs.renameSync(tmp, file);
  }
  return answer;
}

function candidateVersions(pkgs: readonly string[]): string {
  return pkgs.map((p) => `${p}=${/Candidate: (\S+)/.exec(run(['apt-cache', 'policy', p]))?.[1] ?? '(none)'}`).join(' ');
}

/** EXTLINUX's configuration: no menu, straight to the kernel, on the serial port as well. */
export function extlinuxConfig(cmdline = BOOTLOADER_CMDLINE): string {
  return ['SERIAL 0 115200', 'DEFAULT virtualinux', 'PROMPT 0', 'TIMEOUT 0', 'LABEL virtualinux',
    '  LINUX /boot/vmlinuz', '  INITRD /boot/initrd.img', `  APPEND ${cmdline}`, ''].join('\n');
}

/**
 * Writes the boot-loader variant to `out` (raw): an MBR (syslinux mbr.bin) with one active Linux
 * partition at 1 MiB (written here: no partitioning tool needed) holding an ext4 made of `tree` plus /boot (bzImage, initramfs, extlinux.conf),
 * and EXTLINUX installed in that file system (loop-mounted for `extlinux --install`, which needs
 * the mounted file system to map its own blocks). The file system is ext3 (the guest mounts it
 * with the ext4 driver): Debian's EXTLINUX 6.04 fails to load a kernel stored in extents
 * ("Loading /boot/vmlinuz failed: I/O error"), which every ext4 file written by mke2fs -d is.
 */
function writeBootloaderDisk(work: string, tree: string, sizeMiB: number, bzImage: string, initrd: string, out: string): void {
  const sx = path.join(work, 'syslinux');
  fs.mkdirSync(sx, { recursive: true });
  run(['apt-get', 'download', ...SYSLINUX_PACKAGES], { cwd: sx });
  for (const deb of fs.readdirSync(sx).filter((f) => f.endsWith('.deb'))) run(['dpkg-deb', '-x', path.join(sx, deb), path.join(sx, 'x')]);
  const extlinux = path.join(sx, 'x/usr/bin/extlinux');
  const mbr = path.join(sx, 'x/usr/lib/syslinux/mbr/mbr.bin');
  fs.mkdirSync(path.join(tree, 'boot/extlinux'), { recursive: true });
  fs.copyFileSync(bzImage, path.join(tree, 'boot/vmlinuz'));
  fs.copyFileSync(initrd, path.join(tree, 'boot/initrd.img'));
  fs.writeFileSync(path.join(tree, 'boot/extlinux/extlinux.conf'), extlinuxConfig());
  const fsMiB = sizeMiB + 64; // room for /boot
  fs.writeFileSync(out, '');
  fs.truncateSync(out, PARTITION_OFFSET + fsMiB * 1024 * 1024);
  run(['mke2fs', '-q', '-F', '-t', 'ext3', '-L', 'vcroot', '-E', `offset=${PARTITION_OFFSET},root_owner=0:0`,
    '-d', tree, out, `${fsMiB}M`]);
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  run(['mount', '-o', `loop,offset=${PARTITION_OFFSET}`, out, mnt]);
  try {
    run([extlinux, '--install', path.join(mnt, 'boot/extlinux')]);
  } finally {
    run(['umount', mnt]);
  }
  const fd = fs.openSync(out, 'r+');
  try {
    fs.writeSync(fd, mbrSector(fs.readFileSync(mbr), PARTITION_OFFSET / 512, (fsMiB * 1024 * 1024) / 512), 0, 512, 0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A master boot record: `bootCode` (at most 440 bytes), then one active partition of type 0x83
 * (Linux) from sector `start` for `sectors` sectors (LBA; CHS fields say "use LBA"), and 0x55AA.
 */
export function mbrSector(bootCode: Buffer, start: number, sectors: number): Buffer {
  if (bootCode.length > 440) throw new Error(`guest-image: MBR boot code of ${bootCode.length} bytes (at most 440)`);
  const b = Buffer.alloc(512);
  bootCode.copy(b, 0);
  const e = 446;
  b[e] = 0x80;
  b.set([0xfe, 0xff, 0xff], e + 1);
  b[e + 4] = 0x83;
  b.set([0xfe, 0xff, 0xff], e + 5);
  b.writeUInt32LE(start, e + 8);
  b.writeUInt32LE(sectors, e + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

export function buildGuestImage(opts: GuestImageOptions): GuestImage {
  const log = opts.log ?? ((m: string) => process.stderr.write(`guest-image: ${m}\n`));
  const flavour = opts.flavour ?? 'amd64';
  const dir = path.resolve(opts.out);
  fs.mkdirSync(dir, { recursive: true });
  const apt = aptLookup(dir, flavour, !!opts.force, log);
  const { pkg, version } = apt;
  const kernelVersion = pkg.replace(/^linux-image-/, '');
  const busybox = busyboxPath();
  const bbVersion = run([busybox]).split('\n')[0] ?? '';
  const key = hashInputs([pkg, version, bbVersion, String(opts.rootMiB ?? 256), apt.syslinux]);
  const result: GuestImage = {
    dir,
    kernel: path.join(dir, 'vmlinux'),
    bzImage: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd.img'),
    image: path.join(dir, 'rootfs.qcow2'),
    cmdline: GUEST_CMDLINE,
    ostemplate: path.join(dir, 'ostemplate.yaml'),
    bootloaderImage: path.join(dir, 'rootfs-bootloader.qcow2'),
    bootloaderOstemplate: path.join(dir, 'ostemplate-bootloader.yaml'),
    kernelVersion,
    cached: false,
  };
  const keyFile = path.join(dir, '.build-key');
  const outputs = [result.kernel, result.bzImage, result.initrd, result.image, result.ostemplate,
    result.bootloaderImage, result.bootloaderOstemplate];
  if (!opts.force && fs.existsSync(keyFile) && fs.readFileSync(keyFile, 'utf8').trim() === key &&
    outputs.every((f) => fs.existsSync(f))) {
    log(`up to date in ${dir} (kernel ${kernelVersion})`);
    return { ...result, cached: true };
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vc-guest-image-'));
  try {
    log(`downloading ${pkg} ${version}`);
    run(['apt-get', 'download', `${pkg}=${version}`], { cwd: work });
    const deb = fs.readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new Error(`guest-image: apt-get download left no ${pkg} .deb in ${work}`);
    const kroot = path.join(work, 'kernel');
    run(['dpkg-deb', '-x', path.join(work, deb), kroot]);

    const tmp = (f: string): string => `${f}.tmp-${process.pid}`;
    fs.copyFileSync(path.join(kroot, 'boot', `vmlinuz-${kernelVersion}`), tmp(result.bzImage));
    extractVmlinux(tmp(result.bzImage), tmp(result.kernel));
    const modDir = path.join(kroot, 'lib/modules', kernelVersion);
    run(['depmod', '-b', kroot, kernelVersion]);
    const modules = guestModules(
      fs.readFileSync(path.join(modDir, 'modules.dep'), 'utf8'),
      fs.readFileSync(path.join(modDir, 'modules.builtin'), 'utf8'),
    );
    writeInitramfs(work, modDir, modules.boot, busybox, tmp(result.initrd));
    log(`initramfs with ${modules.boot.length} modules, ${modules.nfs.length} NFS client modules on the root disk`);

    const rootTree = path.join(work, 'root');
    writeRootTree(rootTree, busybox, modDir, modules.nfs);
    const raw = path.join(work, 'root.ext4');
    run(['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'vcroot', '-E', 'root_owner=0:0', '-d', rootTree, raw,
      `${opts.rootMiB ?? 256}M`]);
    run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, tmp(result.image)]);
    const rawBoot = path.join(work, 'bootloader.raw');
    writeBootloaderDisk(work, rootTree, opts.rootMiB ?? 256, tmp(result.bzImage), tmp(result.initrd), rawBoot);
    run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', rawBoot, tmp(result.bootloaderImage)]);

    const template = {
      apiVersion: 'virtualinux.org/v1alpha1',
      kind: 'OSTemplate',
      metadata: { name: 'busybox', annotations: { 'virtualinux.org/kernel-package': `${pkg}=${version}` } },
      spec: {
        image: { path: result.image, format: 'qcow2' },
        boot: { kernel: result.kernel, initrd: result.initrd, cmdline: GUEST_CMDLINE },
        revision: 1,
        guestAgent: true,
      },
    };
    fs.writeFileSync(tmp(result.ostemplate), stringify(template));
    const bootloaderTemplate = {
      ...template,
      metadata: { ...template.metadata, name: 'busybox-bootloader' },
      spec: { image: { path: result.bootloaderImage, format: 'qcow2' }, revision: 1, guestAgent: true },
    };
    fs.writeFileSync(tmp(result.bootloaderOstemplate), stringify(bootloaderTemplate));
    for (const f of outputs) fs.renameSync(tmp(f), f);
    fs.writeFileSync(keyFile, key + '\n');
    log(`built in ${dir}: kernel ${kernelVersion}, ${path.basename(result.image)}, ostemplate.yaml, ` +
      `${path.basename(result.bootloaderImage)}, ${path.basename(result.bootloaderOstemplate)}`);
    return result;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function main(argv: string[]): void {
  const usage = 'usage: hack/guest-image build --out DIR [--flavour amd64|cloud-amd64] [--force]';
  if (argv[0] !== 'build') {
    process.stderr.write(usage + '\n');
    process.exit(2);
  }
  let out: string | undefined;
  let flavour: string | undefined;
  let force = false;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') out = argv[++i];
    else if (a === '--flavour') flavour = argv[++i];
    else if (a === '--force') force = true;
    else {
      process.stderr.write(`unknown argument ${a}\n${usage}\n`);
      process.exit(2);
    }
  }
  if (!out) {
    process.stderr.write(usage + '\n');
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('guest-image: run as root (apt-get download/update, files owned by root in the image)\n');
    process.exit(1);
  }
  try {
    // The wrapper runs from the repository root; a relative --out is relative to the caller.
    const r = buildGuestImage({ out: path.resolve(process.env.VC_CALLER_CWD ?? '.', out), flavour, force });
    process.stdout.write(r.ostemplate + '\n');
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
