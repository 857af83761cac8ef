// The o2cb cluster stack of OCFS2 on a physical node: which nodes form the cluster and how long a
// node may miss its disk heartbeat before the others declare it dead (docs/adr/0007).
//
// Contract:
// - o2cbOnline(t, cluster) makes the node `t` a member of `cluster` (loads the o2cb stack, mounts
//   configfs and dlmfs, writes /etc/ocfs2/cluster.conf, `o2cb register-cluster`, sets the
//   timeouts) in ONE command on the node. Idempotent: run again with more members it adds them to
//   the running cluster (a node joining); members whose number or address changed are replaced.
//   It also writes /etc/default/o2cb (O2CB_ENABLED=true and the same timeouts), so the node's boot
//   script (hack/node/rcS) brings the same cluster back after a reboot.
//   Refused (O2cbError, nothing changed): the node is registered in another o2cb cluster (a node is
//   in one cluster at a time); the node's host name is not among the members; the timeouts differ
//   from the running ones while a heartbeat runs (the kernel keeps the old threshold and o2net
//   refuses peers with other timeouts: change them with every volume unmounted, on every node).
//   On failure the node may be left with the stack loaded and the config written (harmless: no
//   heartbeat runs until a volume is mounted).
// - o2cbState(t) reads what the kernel has: the registered cluster, its nodes, the local one, the
//   timeouts and the heartbeat regions (one per mounted OCFS2 volume with local heartbeat).
// - o2cbOffline(t, cluster) unregisters the cluster (refused while a heartbeat region is active,
//   i.e. a volume is mounted) and sets O2CB_ENABLED=false. Not registered: no-op.
// Every name reaches the node as an argv element, validated first.

import { NamedError } from '../../api/errors.js';
import type { Transport } from '../transport/types.js';

export class O2cbError extends NamedError {}

export interface O2cbMember {
  /** The node's host name (o2cb finds the local node by it). */
  name: string;
  /** The IPv4 address o2net listens on and connects to (TCP `port`). */
  address: string;
  /** The o2cb node number, 0-254, unique in the cluster and stable while the node is a member. */
  number: number;
  /** Default 7777. */
  port?: number;
}

/**
 * o2cb's timeouts, the same on every node of a cluster. A node that has not written its heartbeat
 * block for (deadThreshold - 1) x 2 s is declared dead by the others (and a node whose own
 * heartbeat write takes that long fences itself: the kernel restarts it).
 */
export interface O2cbTimeouts {
  /** O2CB_HEARTBEAT_THRESHOLD: 2-second heartbeat iterations; Debian's default 31 (60 s). */
  deadThreshold: number;
  /** O2CB_IDLE_TIMEOUT_MS: an o2net connection silent this long is dropped; default 30000. */
  idleTimeoutMs: number;
  /** O2CB_KEEPALIVE_DELAY_MS: default 2000 (must be below idleTimeoutMs). */
  keepaliveDelayMs: number;
  /** O2CB_RECONNECT_DELAY_MS: default 2000. */
  reconnectDelayMs: number;
}

/** Debian's defaults (ocfs2-tools 1.8): for nodes on real hardware. */
export const O2CB_DEFAULT_TIMEOUTS: O2cbTimeouts = { deadThreshold: 31, idleTimeoutMs: 30_000, keepaliveDelayMs: 2_000, reconnectDelayMs: 2_000 };

/**
 * For nodes emulated by QEMU TCG on a loaded machine (the full testbed; docs/adr/0007): dead after
 * 300 s without a heartbeat write, o2net connections dropped after 120 s of silence.
 */
export const O2CB_TCG_TIMEOUTS: O2cbTimeouts = { deadThreshold: 151, idleTimeoutMs: 120_000, keepaliveDelayMs: 5_000, reconnectDelayMs: 5_000 };

export interface O2cbCluster {
  /** 1-16 letters and digits (o2cb's rule). */
  name: string;
  members: readonly O2cbMember[];
  timeouts: O2cbTimeouts;
}

export interface O2cbState {
  /** The registered cluster, or undefined when o2cb is offline. */
  cluster?: string;
  nodes: { name: string; number: number; address: string; local: boolean }[];
  timeouts?: O2cbTimeouts;
  /** Active heartbeat regions (the UUIDs of the OCFS2 volumes mounted with local heartbeat). */
  regions: string[];
}

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** Throws O2cbError naming the field when the cluster cannot be written as it is. */
export function validateCluster(c: O2cbCluster): void {
  const bad = (field: string, why: string): never => {
    throw new O2cbError(`o2cb cluster ${JSON.stringify(c.name)}: ${field} ${why}`);
  };
  if (!/^[A-Za-z0-9]{1,16}$/.test(c.name)) bad('name', 'must be 1-16 letters and digits');
  if (c.members.length === 0) bad('members', 'must name at least one node');
  const seen = { name: new Set<string>(), number: new Set<number>(), address: new Set<string>() };
  c.members.forEach((m, i) => {
    if (!NODE_NAME.test(m.name)) bad(`members[${i}].name`, `${JSON.stringify(m.name)} is not a host name`);
    if (!IPV4.test(m.address)) bad(`members[${i}].address`, `${JSON.stringify(m.address)} is not an IPv4 address`);
    if (!Number.isInteger(m.number) || m.number < 0 || m.number > 254) bad(`members[${i}].number`, `${m.number} is not an integer from 0 to 254`);
    const port = m.port ?? 7777;
    if (!Number.isInteger(port) || port < 1 || port > 65535) bad(`members[${i}].port`, `${port} is not a TCP port`);
    for (const k of ['name', 'number', 'address'] as const) {
      const v = m[k] as never;
      if ((seen[k] as Set<unknown>).has(v)) bad(`members[${i}].${k}`, `${JSON.stringify(v)} appears twice`);
      (seen[k] as Set<unknown>).add(v);
    }
  });
  const t = c.timeouts;
  if (!Number.isInteger(t.deadThreshold) || t.deadThreshold < 3 || t.deadThreshold > 1000) bad('timeouts.deadThreshold', 'must be an integer from 3 to 1000');
  for (const k of ['idleTimeoutMs', 'keepaliveDelayMs', 'reconnectDelayMs'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 1 || t[k] > 3_600_000) bad(`timeouts.${k}`, 'must be an integer number of ms up to an hour');
  }
  if (t.keepaliveDelayMs >= t.idleTimeoutMs) bad('timeouts.keepaliveDelayMs', 'must be below idleTimeoutMs');
}

/** /etc/ocfs2/cluster.conf for the cluster (ocfs2-tools' stanza format). Pure. */
export function renderClusterConf(c: O2cbCluster): string {
  validateCluster(c);
  const lines = ['cluster:', `\tname = ${c.name}`, '\theartbeat_mode = local', `\tnode_count = ${c.members.length}`, ''];
  for (const m of [...c.members].sort((a, b) => a.number - b.number)) {
    lines.push('node:', `\tcluster = ${c.name}`, `\tnumber = ${m.number}`, `\tip_port = ${m.port ?? 7777}`, `\tip_address = ${m.address}`, `\tname = ${m.name}`, '');
  }
  return lines.join('\n');
}

// Runs on the node: $1 cluster, $2-$5 the timeouts; stdin: cluster.conf. Exit 3: refused.
const ONLINE_SCRIPT = String.raw`
set -e
c="$1"; dead="$2"; idle="$3"; ka="$4"; rc="$5"
[ -e /etc/mtab ] || ln -s ../proc/self/mounts /etc/mtab
modprobe -a configfs ocfs2_stackglue ocfs2_stack_o2cb ocfs2_dlmfs ocfs2
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
mkdir -p /dlm /etc/ocfs2
mountpoint -q /dlm || mount -t ocfs2_dlmfs ocfs2_dlmfs /dlm
for o in /sys/kernel/config/cluster/*; do
  [ -d "$o" ] || continue
  [ "$(basename "$o")" = "$c" ] || { echo "this node is in o2cb cluster $(basename "$o"), not $c: unregister it first" >&2; exit 3; }
done
cat > /etc/ocfs2/cluster.conf.vl-new
grep -q "^	name = $(hostname)\$" /etc/ocfs2/cluster.conf.vl-new || { echo "this node ($(hostname)) is not a member of o2cb cluster $c" >&2; rm -f /etc/ocfs2/cluster.conf.vl-new; exit 3; }
mv /etc/ocfs2/cluster.conf.vl-new /etc/ocfs2/cluster.conf
o2cb register-cluster "$c"
d="/sys/kernel/config/cluster/$c"
put() { [ "$(cat "$d/$1")" = "$2" ] || echo "$2" > "$d/$1" 2>/dev/null || true; }
put idle_timeout_ms "$idle"; put keepalive_delay_ms "$ka"; put idle_timeout_ms "$idle"; put reconnect_delay_ms "$rc"
put heartbeat/dead_threshold "$dead"
for f in "heartbeat/dead_threshold $dead" "idle_timeout_ms $idle" "keepalive_delay_ms $ka" "reconnect_delay_ms $rc"; do
  set -- $f
  [ "$(cat "$d/$1")" = "$2" ] || { echo "cannot set $1 to $2: it stays $(cat "$d/$1") (a heartbeat or a peer connection is active: unmount every OCFS2 volume on every node to change the timeouts)" >&2; exit 3; }
done
[ "$(cat "$d/node/$(hostname)/local")" = 1 ] || { echo "o2cb did not take $(hostname) for the local node" >&2; exit 1; }
cat > /etc/default/o2cb.vl-new <<EOF
# written by virtualinux (drivers/shared-fs/o2cb.ts); read at boot by hack/node/rcS and /etc/init.d/o2cb
O2CB_ENABLED=true
O2CB_STACK=o2cb
O2CB_BOOTCLUSTER=$c
O2CB_HEARTBEAT_THRESHOLD=$dead
O2CB_IDLE_TIMEOUT_MS=$idle
O2CB_KEEPALIVE_DELAY_MS=$ka
O2CB_RECONNECT_DELAY_MS=$rc
EOF
mv /etc/default/o2cb.vl-new /etc/default/o2cb
`;

// Prints the kernel's o2cb state as "key value" lines.
const STATE_SCRIPT = String.raw`
for d in /sys/kernel/config/cluster/*; do
  [ -d "$d" ] || continue
  echo "cluster $(basename "$d")"
  echo "timeouts $(cat "$d/heartbeat/dead_threshold") $(cat "$d/idle_timeout_ms") $(cat "$d/keepalive_delay_ms") $(cat "$d/reconnect_delay_ms")"
  for n in "$d"/node/*; do [ -d "$n" ] && echo "node $(basename "$n") $(cat "$n/num") $(cat "$n/ipv4_address") $(cat "$n/local")"; done
  for r in "$d"/heartbeat/*; do [ -d "$r" ] && echo "region $(basename "$r")"; done
done
true
`;

const OFFLINE_SCRIPT = String.raw`
set -e
c="$1"
if [ -d "/sys/kernel/config/cluster/$c" ]; then
  for r in "/sys/kernel/config/cluster/$c"/heartbeat/*; do
    [ -d "$r" ] && { echo "o2cb cluster $c still has an active heartbeat region ($(basename "$r")): unmount its OCFS2 volumes first" >&2; exit 3; }
  done
  o2cb unregister-cluster "$c"
fi
[ ! -f /etc/default/o2cb ] || sed -i 's/^O2CB_ENABLED=.*/O2CB_ENABLED=false/' /etc/default/o2cb
`;

async function runScript(t: Transport, what: string, script: string, args: string[], stdin?: string): Promise<string> {
  const r = await t.exec(['sh', '-c', script, 'sh', ...args], { timeoutMs: 0, ...(stdin !== undefined ? { stdin } : {}) });
  if (r.code !== 0) throw new O2cbError(`${t.host}: ${what}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000) || `exited ${r.code}`}`);
  return r.stdout;
}

export async function o2cbOnline(t: Transport, c: O2cbCluster): Promise<void> {
  const conf = renderClusterConf(c);
  const x = c.timeouts;
  await runScript(t, `o2cb cluster ${c.name} online`, ONLINE_SCRIPT,
    [c.name, String(x.deadThreshold), String(x.idleTimeoutMs), String(x.keepaliveDelayMs), String(x.reconnectDelayMs)], conf);
}

export async function o2cbState(t: Transport): Promise<O2cbState> {
  const out = await runScript(t, 'read o2cb state', STATE_SCRIPT, []);
  const s: O2cbState = { nodes: [], regions: [] };
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'cluster') s.cluster = f[1];
    else if (f[0] === 'timeouts') s.timeouts = { deadThreshold: Number(f[1]), idleTimeoutMs: Number(f[2]), keepaliveDelayMs: Number(f[3]), reconnectDelayMs: Number(f[4]) };
    else if (f[0] === 'node') s.nodes.push({ name: f[1]!, number: Number(f[2]), address: f[3]!, local: f[4] === '1' });
    else if (f[0] === 'region') s.regions.push(f[1]!);
  }
  return s;
}

export async function o2cbOffline(t: Transport, cluster: string): Promise<void> {
  if (!/^[A-Za-z0-9]{1,16}$/.test(cluster)) throw new O2cbError(`o2cb cluster name ${JSON.stringify(cluster)} must be 1-16 letters and digits`);
  await runScript(t, `o2cb cluster ${cluster} offline`, OFFLINE_SCRIPT, [cluster]);
}
