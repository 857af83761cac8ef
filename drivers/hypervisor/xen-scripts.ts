// The scripts XenDriver installs on a node or runs there (as `sh -c` with argv): the block hotplug
// script for our disks, the forced command of the migration keys, and xl create/restore wrapped
// with the disks attached beforehand. Data only; the driver (xen-driver.ts) installs and runs them.

/**
 * The block hotplug script libxl runs for our disks (`script=` in the disk spec), installed as
 * `<runRoot>/vl-block`. add: a block device is used as it is; a qcow2 file (its magic `QFI\xfb`)
 * is served by qemu-nbd on a free /dev/nbdN (dom0 has qemu-utils but no QEMU for the qdisk
 * back-end), any other file gets a loop device; the device's major:minor goes to the back-end's
 * `physical-device` for blkback. remove: the nbd or loop device goes. POSIX sh with a handful of
 * execs: Xen's own bash `block` script ran past libxl's hotplug timeout under TCG.
 *
 * libxl kills a hotplug script after 40 s, and a loaded TCG dom0 took longer than that to start
 * qemu-nbd. So the driver attaches the files itself first, with no such limit: `vl-block prepare
 * FILE...` (before xl create and xl restore, inside the create lock) attaches each file and
 * records its device and major:minor in /run/vl-pre/<st_dev>.<st_ino> of the file; add takes a recorded device
 * (the record goes: from then on the domain's remove detaches it as any other); `vl-block
 * unprepare FILE...` (after xl returned, whatever it did) detaches what no domain took.
 * `prepare-incoming` (the target of a live migration, before the transfer) attaches only files
 * that are not qcow2: a loop device reads the file through the 9p mount without a cache, so it
 * sees the source's last writes, while qemu-nbd keeps qcow2 metadata (L1/L2 tables) in memory
 * from the moment it opened the file, which the source goes on changing until the switchover.
 */
export const XEN_BLOCK_SCRIPT = `#!/bin/sh
# VirtuaLinux block hotplug script for xl (written by XenDriver; do not edit).
fail() { xenstore-write "$XENBUS_PATH/hotplug-error" "$1" "$XENBUS_PATH/hotplug-status" error; exit 1; }
qcow2() { [ "$(head -c 4 -- "$1")" = "$(printf 'QFI\\373')" ]; }
# attach FILE: sets dev to a new nbd (qcow2) or loop device serving FILE, or err to why not
attach() {
  if qcow2 "$1"; then
    [ -e /sys/module/nbd ] || modprobe nbd nbds_max=16 || { err="no nbd module for $1"; return 1; }
    i=0
    # claim a device: the mkdir is atomic, so two disks added at once never take the same one
    while [ -e /sys/block/nbd$i/pid ] || ! mkdir /run/vl-nbd$i 2>/dev/null; do
      i=$((i + 1)); [ -e /sys/block/nbd$i ] || { err="no free nbd device for $1"; return 1; }
    done
    qemu-nbd -c /dev/nbd$i -f qcow2 -- "$1" >/dev/null || { rmdir /run/vl-nbd$i; err="qemu-nbd $1 failed"; return 1; }
    dev=/dev/nbd$i
  else
    [ -e /dev/loop-control ] || modprobe loop
    dev=$(losetup -f --show -- "$1") || { err="losetup $1 failed"; return 1; }
  fi
}
detach() {
  case "$1" in
    /dev/loop*) losetup -d "$1" ;;
    /dev/nbd*) qemu-nbd -d "$1" >/dev/null; rmdir "/run/vl-nbd\${1#/dev/nbd}" 2>/dev/null ;;
  esac
}
# the record of a file's prepared device (by the file's device and inode: names need no quoting)
rec() { r=/run/vl-pre/$(stat -L -c %d.%i -- "$1" 2>/dev/null) && [ "$r" != /run/vl-pre/ ]; }
case "$1" in
add)
  f=$(xenstore-read "$XENBUS_PATH/params") || exit 1
  if [ -b "$f" ]; then
    dev=$f
  elif rec "$f" && [ -f "$r" ] && read -r dev mm < "$r" && rm -f "$r" && [ -b "$dev" ]; then
    :
  else
    mm=
    attach "$f" || fail "$err"
  fi
  # (read and the recorded major:minor: every exec counts against libxl's 40 s on a loaded dom0)
  xenstore-write "$XENBUS_PATH/physical-device" "\${mm:-$(stat -L -c %t:%T -- "$dev")}" "$XENBUS_PATH/physical-device-path" "$dev"
  ;;
remove)
  dev=$(xenstore-read "$XENBUS_PATH/physical-device-path" 2>/dev/null) || exit 0
  detach "$dev"
  ;;
prepare|prepare-incoming)
  mode=$1; shift
  mkdir -p /run/vl-pre || exit 1
  for f in "$@"; do
    [ -b "$f" ] && continue
    [ "$mode" = prepare-incoming ] && qcow2 "$f" && continue
    rec "$f" || { echo "cannot stat $f" >&2; exit 1; }
    if [ -f "$r" ]; then
      read -r d _ < "$r"
      # still serving a file: a loop device backed by this one, an nbd device with its server
      case "$d" in
        /dev/loop*) [ "$(cat "/sys/block/\${d#/dev/}/loop/backing_file" 2>/dev/null)" = "$f" ] && continue ;;
        /dev/nbd*) [ -e "/sys/block/\${d#/dev/}/pid" ] && continue ;;
      esac
      rm -f "$r"
    fi
    attach "$f" || { echo "$err" >&2; exit 1; }
    echo "$dev $(stat -L -c %t:%T -- "$dev")" > "$r.tmp" && mv -f "$r.tmp" "$r" || { detach "$dev"; exit 1; }
  done
  ;;
unprepare)
  shift
  for f in "$@"; do
    rec "$f" && [ -f "$r" ] || continue
    read -r d _ < "$r" && rm -f "$r" && detach "$d"
  done
  ;;
esac
exit 0
`;

/**
 * The forced command (authorized_keys `command=`) of the migration keys on a node, installed as
 * `<runRoot>/vl-migrate-receive`: `xl migrate-receive`, with `-p` (leave the domain paused) when
 * the source's xl asked for it (`xl migrate -p` puts ` -p` after migrate-receive in the command
 * line it sends); nothing else of the requested command is run.
 */
export const XEN_MIGRATE_RECEIVE_SCRIPT = `#!/bin/sh
# VirtuaLinux: the only command other nodes' migration keys may run here (written by XenDriver).
case " $SSH_ORIGINAL_COMMAND " in
  *" migrate-receive"*" -p "*) exec xl migrate-receive -p ;;
esac
exec xl migrate-receive
`;

/**
 * xl create and xl restore with the domain's disk files attached beforehand (vl-block prepare: no
 * hotplug timeout on a slow qemu-nbd) and what no domain took detached afterwards, whatever xl did.
 * CREATE_WITH_DISKS args: block-script cfg n <n files to remove first: console logs> disk-files...
 * RESTORE_WITH_DISKS args: block-script cfg saved-state disk-files...
 */
export const CREATE_WITH_DISKS = `blk=$1 cfg=$2 n=$3; shift 3
while [ "$n" -gt 0 ]; do rm -f -- "$1"; shift; n=$((n - 1)); done
"$blk" prepare "$@" && xl create -q "$cfg"; rc=$?
"$blk" unprepare "$@"; exit $rc`;
export const RESTORE_WITH_DISKS = `blk=$1 cfg=$2 state=$3; shift 3
"$blk" prepare "$@" && xl restore "$cfg" "$state"; rc=$?
"$blk" unprepare "$@"; exit $rc`;

/**
 * XenDriver.list() in one command, one SSH session where it was three (on a full test node, a
 * Xen dom0 under TCG, each session is a fork of sshd and a shell: the lists of the runtime's
 * pollers were most of dom0's commands, VL_TRACE_EXEC in session 18): `xl list -l`, the `xl list`
 * table and the run directory's domain files (<name>.cfg and the markers whose suffixes are $2
 * and $3), each followed by a status line (xl-output.ts splitStatusSections). $1: the run directory.
 */
export const XL_LIST_SCRIPT = [
  'xl list -l; printf \'\\n@@vl-status %s\\n\' "$?"',
  'xl list; printf \'\\n@@vl-status %s\\n\' "$?"',
  'find "$1" -maxdepth 1 -type f \\( -name \'*.cfg\' -o -name "*$2" -o -name "*$3" \\); printf \'\\n@@vl-status %s\\n\' "$?"',
].join('\n');
