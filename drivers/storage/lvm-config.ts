// The LVM2 settings every LVM command of the SAN drivers (evms, lvm) carries: one place, so the
// storage node's metadata changes and every node's activations run LVM alike (ADR 0006, "What an
// LVM command costs"). Measured in a TCG dom0 (Dec 6, session 12): an `lvcreate` with LVM's
// defaults spends most of its time outside the metadata change itself, in waiting for udev to
// process each device-mapper event, in archiving and backing up the VG metadata as files on the
// node's root disk, and in registering mappings with dmeventd.
//
// - activation/udev_sync=0, activation/udev_rules=0: libdm makes and removes the /dev/<vg>/<lv>
//   and /dev/mapper nodes itself, synchronously, instead of waiting for udev's rules to do it. The
//   driver never needs udev for these LVs: the VG has autoactivation off (no udev rule maps them),
//   and the scripts check the node itself (`[ -b ... ]`). Every command of the drivers on these
//   LVs carries the same pair (activation and deactivation alike), so no LV is made by one
//   mechanism and removed by the other.
// - activation/monitoring=0: no dmeventd registration. Nothing here is autoextended or repaired by
//   it: thin pools are as large as their origin (never full, no autoextend by design) and the evms
//   exception stores never fill.
// - backup/backup=0, backup/archive=0: no copies of the VG metadata in /etc/lvm of whichever node
//   is the storage node at the moment. The metadata lives on the SAN disk's metadata area, which
//   keeps the previous versions too (`pvck --dump metadata_all` recovers them for vgcfgrestore);
//   the files on one node's root disk were never a reliable history of a VG that the storage
//   node's successor writes as well.

/** The `--config` string for every LVM command of the SAN drivers. */
export const LVM_CONFIG = 'activation/udev_sync=0 activation/udev_rules=0 activation/monitoring=0 backup/backup=0 backup/archive=0';

/** The same for a node other than the storage node: activation never writes the VG's metadata. */
export const LVM_CONFIG_READ_ONLY = `${LVM_CONFIG} global/metadata_read_only=1`;

/** `command --config LVM_CONFIG args...`: an LVM command of the SAN drivers. */
export function lvm(command: string, ...args: string[]): string[] {
  return [command, '--config', LVM_CONFIG, ...args];
}
