// Pure construction of a domain's file layout and QEMU command line (no I/O), so the exact argv
// is unit-tested. Every value reaches QEMU as one argv element; inside QEMU's own `key=value,...`
// option syntax a comma in a value is written as two commas, and every value is given with an
// explicit key (an implied first key would read "a=b" in a name as an option).

import { createHash } from 'node:crypto';
import type { DomainSpec } from './types.js';

export type Acceleration = 'kvm' | 'tcg';

/** The virtio-serial port name the reference guest's agent (hack/guest/vc-agent) answers on. */
export const GUEST_AGENT_PORT = 'org.virtualinux.agent.0';

export interface DomainPaths {
  /** `<runRoot>/<name>`: everything of the domain on this node. */
  dir: string;
  pidFile: string;
  /** QMP monitor for long operations (migration, suspend, resume): one user at a time. */
  opsSocket: string;
  /** QMP monitor for short requests (status, cancel, power button), so they are never stuck behind a migration. */
  ctlSocket: string;
  consoleLog: string;
  /** The serial console (ttyS0) as a unix socket server: one interactive client at a time (`vcctl console`). */
  consoleSocket: string;
  /** The guest agent's virtio-serial port (GUEST_AGENT_PORT) as a unix socket server. */
  agentSocket: string;
  /** The DomainSpec as JSON: what migration and restart reuse. */
  specFile: string;
  /** Symlink whose name is free of user data, pointing at a state file (QEMU's `exec:` URIs are shell strings). */
  stateLink: string;
}

/** Unix socket paths are limited to 108 bytes; longer ones go to a hashed name under runRoot. */
const MAX_SOCKET_PATH = 100;

export function nameHash(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 16);
}

export function domainPaths(runRoot: string, name: string, consoleLog?: string): DomainPaths {
  const dir = `${runRoot}/${name}`;
  const h = nameHash(name);
  const sock = (kind: string): string => {
    const p = `${dir}/${kind}.sock`;
    return p.length <= MAX_SOCKET_PATH ? p : `${runRoot}/.sock/${h}.${kind}`;
  };
  return {
    dir,
    pidFile: `${dir}/qemu.pid`,
    opsSocket: sock('qmp'),
    ctlSocket: sock('ctl'),
    consoleLog: consoleLog ?? `${dir}/console.log`,
    consoleSocket: sock('console'),
    agentSocket: sock('agent'),
    specFile: `${dir}/domain.json`,
    stateLink: `${runRoot}/.xfer/${h}`,
  };
}

/** QEMU option value escaping: `,` separates options, so a literal comma is doubled. */
export function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export interface QemuArgvOptions {
  accel: Acceleration;
  /** Start waiting for an incoming migration (`-incoming defer`, then migrate-incoming over QMP). */
  incoming?: boolean;
  /** Append to the console log instead of truncating it (resume, migration target). */
  appendConsole?: boolean;
}

export function buildQemuArgv(spec: DomainSpec, paths: DomainPaths, opts: QemuArgvOptions): string[] {
  const e = qemuOptValue;
  const argv: string[] = [
    '-name', `guest=${e(spec.name)}`,
    '-machine', 'pc',
    '-accel', opts.accel,
    ...(opts.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', `${spec.memoryMiB}M`,
    '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
  ];
  // Without a kernel the firmware (SeaBIOS) boots the root disk's own boot loader.
  if (spec.boot) {
    argv.push('-kernel', spec.boot.kernel, ...(spec.boot.initrd ? ['-initrd', spec.boot.initrd] : []), '-append', spec.boot.cmdline);
  }
  const disks = [spec.disks.root, spec.disks.swap, spec.disks.config];
  const ids = ['vda', 'vdb', 'vdc'];
  disks.forEach((d, i) => {
    if (!d) return;
    const id = ids[i]!;
    argv.push(
      '-blockdev',
      `driver=file,node-name=${id}-file,filename=${e(d.path)}${d.readOnly ? ',read-only=on' : ''}`,
      '-blockdev',
      `driver=${d.format},node-name=${id},file=${id}-file${d.readOnly ? ',read-only=on' : ''}`,
      '-device', `virtio-blk-pci,drive=${id},id=${id}-dev${!spec.boot && id === 'vda' ? ',bootindex=0' : ''}`,
    );
  });
  if (spec.sharedDir) {
    argv.push(
      '-fsdev', `local,id=vcshared,path=${e(spec.sharedDir)},security_model=none`,
      '-device', 'virtio-9p-pci,fsdev=vcshared,mount_tag=vcshared',
    );
  }
  if (spec.network) {
    argv.push(
      '-netdev', `tap,id=net0,ifname=${e(spec.network.tap)},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=net0,mac=${e(spec.network.mac)},romfile=`,
    );
  }
  argv.push(
    // The serial console: a socket an interactive client may attach to, and everything the guest
    // prints also goes to the console log (QEMU writes the log whether or not a client is attached).
    '-chardev', `socket,id=console0,path=${e(paths.consoleSocket)},server=on,wait=off,logfile=${e(paths.consoleLog)},logappend=${opts.appendConsole ? 'on' : 'off'}`,
    '-serial', 'chardev:console0',
    // The guest agent's channel (virtio-serial, like qemu-guest-agent's).
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=agent0,path=${e(paths.agentSocket)},server=on,wait=off`,
    '-device', `virtserialport,bus=vser0.0,chardev=agent0,name=${GUEST_AGENT_PORT}`,
    '-chardev', `socket,id=qmp-ops,path=${e(paths.opsSocket)},server=on,wait=off`,
    '-mon', 'chardev=qmp-ops,mode=control',
    '-chardev', `socket,id=qmp-ctl,path=${e(paths.ctlSocket)},server=on,wait=off`,
    '-mon', 'chardev=qmp-ctl,mode=control',
    '-pidfile', paths.pidFile,
    '-daemonize',
  );
  if (opts.incoming) argv.push('-incoming', 'defer');
  return argv;
}

/** The argv element by which a running QEMU is recognised as this domain's (checked in /proc/PID/cmdline). */
export function nameArg(name: string): string {
  return `guest=${qemuOptValue(name)}`;
}
