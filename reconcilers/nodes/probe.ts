// The PhysicalNode probe, without the controller runtime: one command over the node's transport
// (probeNode), its parsing (parseProbeOutput) and the decision what the node's status becomes
// (nextNodeStatus). The controller (controller.ts) only wires these to the store.

import type { PhysicalNode, PhysicalNodeSpec, PhysicalNodeStatus } from '../../api/types.js';
import { getCondition, setCondition } from '../../api/conditions.js';
import { HostKeyMismatchError, TransportTimeoutError, type Transport } from '../../drivers/transport/types.js';
import { registerSimScript } from '../../drivers/transport/sim-host.js';

export type ReadyReason = 'Probed' | 'Unreachable' | 'HostKeyMismatch' | 'NoHypervisor' | 'StorageRootMissing' | 'SanDeviceMissing';

export interface ProbeResult {
  /** Set when the node could not be probed at all. */
  failure?: { reason: 'Unreachable' | 'HostKeyMismatch'; message: string };
  cores?: number;
  memoryMiB?: number;
  /** The hypervisor's version line, when its tools are present. */
  hypervisorVersion?: string;
  storage?: 'ok' | 'missing' | 'readonly';
  /** The SAN block device (spec.sanDevice), when the spec names one: its size, or missing. */
  san?: { sizeBytes: number } | 'missing';
}

// A fixed script; the hypervisor, the storage root and the SAN device (or "") arrive as positional
// parameters. Each line it prints is "<key> <value>". On a Xen node the cores and memory are the
// machine's as Xen reports them (`xl info` nr_cpus, total_memory), not dom0's share.
export const PROBE_SCRIPT = [
  'v= x=',
  'case "$1" in',
  '  qemu) v=$(qemu-system-x86_64 --version 2>/dev/null | head -n 1) ;;',
  "  xen) x=$(xl info 2>/dev/null) && v=$(printf '%s\\n' \"$x\" | awk -F': *' '/^xen_version/ { print \"Xen \" $2 }') ;;",
  'esac',
  'if [ -n "$v" ] && [ -n "$x" ]; then',
  "  printf '%s\\n' \"$x\" | awk -F': *' '/^nr_cpus/ { print \"cores\", $2 } /^total_memory/ { print \"memmib\", $2 }'",
  'else',
  '  echo "cores $(nproc)"',
  "  awk '/^MemTotal:/ { print \"memkib\", $2 }' /proc/meminfo",
  'fi',
  'if [ -n "$v" ]; then echo "hypervisor $v"; else echo "hypervisor"; fi',
  'if [ ! -d "$2" ]; then echo "storage missing"',
  'elif t="$2/.vl-probe.$$" && : > "$t" 2>/dev/null && rm -f "$t"; then echo "storage ok"',
  'else echo "storage readonly"; fi',
  'if [ -n "$3" ]; then',
  // the size from sysfs (512-byte sectors): reading it does not open the device
  '  if [ -b "$3" ]; then d=$(readlink -f "$3"); echo "san $(( $(cat "/sys/class/block/${d##*/}/size" 2>/dev/null || echo 0) * 512 ))"',
  '  else echo "san missing"; fi',
  'fi',
].join('\n');

// A sim host (drivers/transport/sim-host.ts: benchmarks only) answers this script from its model.
registerSimScript(PROBE_SCRIPT, (host, [, storageRoot, san]) => host.probeOutput(storageRoot ?? '', san ?? ''));

/** Parses the probe script's output. Lines it does not know are ignored. */
export function parseProbeOutput(stdout: string): ProbeResult {
  const r: ProbeResult = {};
  for (const line of stdout.split('\n')) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1).trim();
    if (key === 'cores' && /^\d+$/.test(value)) r.cores = Number(value);
    else if (key === 'memkib' && /^\d+$/.test(value)) r.memoryMiB = Math.floor(Number(value) / 1024);
    else if (key === 'memmib' && /^\d+$/.test(value)) r.memoryMiB = Number(value);
    else if (key === 'san' && value === 'missing') r.san = 'missing';
    else if (key === 'san' && /^\d+$/.test(value)) r.san = { sizeBytes: Number(value) };
    else if (key === 'hypervisor' && value) r.hypervisorVersion = value;
    else if (key === 'storage' && (value === 'ok' || value === 'missing' || value === 'readonly')) r.storage = value;
  }
  return r;
}

/** Runs the probe on the node. Never throws: a node that cannot be reached is a result. */
export async function probeNode(
  transport: Transport,
  spec: Pick<PhysicalNodeSpec, 'hypervisor' | 'storageRoot' | 'sanDevice'>,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<ProbeResult> {
  try {
    const r = await transport.exec(['sh', '-c', PROBE_SCRIPT, 'sh', spec.hypervisor, spec.storageRoot, spec.sanDevice ?? ''], opts);
    if (r.code !== 0) {
      return { failure: { reason: 'Unreachable', message: `the probe exited ${r.code} on the node: ${r.stderr.trim().slice(0, 300)}` } };
    }
    return parseProbeOutput(r.stdout);
  } catch (e) {
    if (e instanceof HostKeyMismatchError) return { failure: { reason: 'HostKeyMismatch', message: e.message } };
    const msg = e instanceof TransportTimeoutError ? `the probe timed out after ${opts.timeoutMs} ms` : (e as Error).message;
    return { failure: { reason: 'Unreachable', message: msg } };
  }
}

export interface NodeEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface NodeDecision {
  status: PhysicalNodeStatus;
  events: NodeEvent[];
  /** Consecutive failed probes after this one (0 after a good probe). */
  failures: number;
}

/**
 * The node's next status from a probe. A failed probe turns Ready False only after
 * `failureThreshold` consecutive failures (earlier ones keep the last verdict), except a host key
 * mismatch (a security finding, at once) and a node that was never Ready. Capacity in spec above
 * what the node really has gives a Warning Event (once per distinct finding, by `lastCapacityWarning`).
 */
export function nextNodeStatus(
  node: PhysicalNode,
  probe: ProbeResult,
  state: { failures: number; failureThreshold: number; lastCapacityWarning?: string },
  now: Date = new Date(),
): NodeDecision & { capacityWarning?: string } {
  const spec = node.spec!;
  const prev = node.status ?? {};
  const generation = node.metadata.generation ?? 0;
  const events: NodeEvent[] = [];
  const verdict = judge(spec, probe);
  const failures = verdict.ok ? 0 : state.failures + 1;
  const prevReady = getCondition(prev.conditions, 'Ready');

  const status: PhysicalNodeStatus = { ...prev, observedGeneration: generation };
  if (probe.cores !== undefined || probe.memoryMiB !== undefined) {
    status.observed = { cores: probe.cores, memoryMiB: probe.memoryMiB };
  }
  if (probe.hypervisorVersion) status.hypervisorVersion = probe.hypervisorVersion;
  if (spec.sanDevice && typeof probe.san === 'object') status.san = { device: spec.sanDevice, sizeBytes: probe.san.sizeBytes };
  else if (!probe.failure) delete status.san;

  const holdVerdict =
    !verdict.ok && verdict.reason !== 'HostKeyMismatch' && failures < state.failureThreshold && prevReady !== undefined;
  if (holdVerdict) {
    // not yet: keep the last verdict, refresh only its generation
    status.conditions = setCondition(prev.conditions, prevReady!, generation, now);
  } else {
    status.conditions = setCondition(
      prev.conditions,
      { type: 'Ready', status: verdict.ok ? 'True' : 'False', reason: verdict.reason, message: verdict.message },
      generation,
      now,
    );
    const wasReady = prevReady?.status === 'True';
    if (verdict.ok && !wasReady) events.push({ type: 'Normal', reason: 'NodeReady', message: verdict.message });
    if (!verdict.ok && (wasReady || prevReady === undefined || prevReady.reason !== verdict.reason)) {
      events.push({ type: 'Warning', reason: verdict.reason, message: verdict.message });
    }
  }

  let capacityWarning: string | undefined;
  const over: string[] = [];
  if (probe.cores !== undefined && spec.capacity.cores > probe.cores) {
    over.push(`spec.capacity.cores ${spec.capacity.cores} exceeds the ${probe.cores} cores the node has`);
  }
  if (probe.memoryMiB !== undefined && spec.capacity.memoryMiB > probe.memoryMiB) {
    over.push(`spec.capacity.memoryMiB ${spec.capacity.memoryMiB} exceeds the ${probe.memoryMiB} MiB the node has`);
  }
  if (over.length) {
    capacityWarning = `${over.join('; ')}: placement may overcommit this node; lower spec.capacity`;
    if (capacityWarning !== state.lastCapacityWarning) {
      events.push({ type: 'Warning', reason: 'CapacityExceedsHost', message: capacityWarning });
    }
  }
  return { status, events, failures, capacityWarning };
}

function judge(spec: PhysicalNodeSpec, p: ProbeResult): { ok: boolean; reason: ReadyReason; message: string } {
  if (p.failure) return { ok: false, reason: p.failure.reason, message: p.failure.message };
  if (!p.hypervisorVersion) {
    const tool = spec.hypervisor === 'xen' ? '`xl info`' : 'qemu-system-x86_64';
    return { ok: false, reason: 'NoHypervisor', message: `${spec.hypervisor}: ${tool} is not available on the node; install it or fix spec.hypervisor` };
  }
  if (p.storage !== 'ok') {
    const what = p.storage === 'readonly' ? 'is not writable' : 'does not exist';
    return { ok: false, reason: 'StorageRootMissing', message: `storage root ${spec.storageRoot} ${what} on the node; mount the SAN there or fix spec.storageRoot` };
  }
  if (spec.sanDevice && typeof p.san !== 'object') {
    return { ok: false, reason: 'SanDeviceMissing', message: `SAN device ${spec.sanDevice} is not a block device on the node; attach the SAN disk or fix spec.sanDevice` };
  }
  return {
    ok: true,
    reason: 'Probed',
    message: `${p.cores ?? '?'} cores, ${p.memoryMiB ?? '?'} MiB, ${p.hypervisorVersion}; storage root ${spec.storageRoot} writable` +
      (spec.sanDevice && typeof p.san === 'object' ? `; SAN ${spec.sanDevice} ${p.san.sizeBytes} bytes` : ''),
  };
}
