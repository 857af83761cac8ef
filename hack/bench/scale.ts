// hack/bench-scale: the whole control plane at scale on a real etcd, with simulated hosts
// (PhysicalNodes with spec.transport: sim and hypervisor: sim, drivers/transport/sim-host.ts:
// simulation only, never the proof a feature works). For each size (the small one first, as the
// baseline in the same run): a fresh etcd, the PhysicalNodes applied and a vc-manager running
// every controller until all nodes are Ready (probed through the sim transport); then `vcctl
// apply` of the VirtualClusters (4 VMs each) and the time until every VM is bound (Placed) and
// Running; vc-manager CPU seconds and peak RSS (/proc), etcd requests (its gRPC counters); a
// `vcctl drain` of a tenth of the nodes and the time until every Migration Succeeded; a delete of
// every VC and the time until no VirtualNode is left. Last line as issue 25 asks.
//
// usage: hack/bench-scale [--sizes 100:1000,1000:10000] [--drain-fraction 0.1] [--etcd-dir /dev/shm] [--until-running] [--no-drain] [--lease-ttl 60] [--wait-limit 20]
// (--no-drain: the delete right after all Running, no drain: to profile the delete alone.)
// (--wait-limit: minutes each wait (Placed, Running, the migrations, the drain, the delete) may take before the size fails; --lease-ttl: vc-manager's leadership lease, default 60 s here, 15 s in vc-manager: with 15 s a
// manager starved of CPU on this loaded machine lost its lease mid-run, and each new term hooks
// every controller again over every cached object; the bench prints how often it was lost.)
// (--until-running: stop each size once all VMs are Running, no drain or delete, for profiling; a size is NODES:VMS, VMS a multiple of 4; VL_BENCH_PROF_DIR=DIR: vc-manager writes a V8 CPU
// profile there; VL_BENCH_HEAP_PROF_DIR=DIR: a V8 sampling heap profile of what it still holds when it stops (with --until-running: all Running); VL_BENCH_LOG=FILE: its whole stderr, warnings included, appended to FILE; VL_SIM_BEHAVIOUR: the sim hosts' timings as JSON, sim-host.ts SimBehaviour.)

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type EventObject, type Migration, type OSTemplate, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { main as vcctlMain } from '../../cli/vcctl.js';
import { startEtcd, type EtcdHarness } from '../lib/etcd-harness.js';
import { percentile } from './stats.js';
import { VC_MANAGER_NODE_FLAGS } from '../../operator/node-flags.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VMS_PER_VC = 4;
const NS = 'bench';

interface Size { nodes: number; vms: number }
interface Result extends Size {
  applyMs: number; placedMs: number; runningMs: number; cpuS: number; rssMiB: number; etcdRequests: number; fsyncMs: number;
  /** Store requests from apply to all Running, by controller (vcm_store_requests_total) and by etcd RPC method. */
  byController: Map<string, number>; byMethod: Map<string, number>; reconciles: Map<string, number>;
  /** When every VC first had StorageReady, NetworkReady True (ms after apply). */
  milestones: Map<string, number>;
  /** The Events in the store once all Running, by reason (each a write of its own, and one per repeat). */
  events: Map<string, number>;
  /** Times vc-manager lost its leadership (its lease not renewed in time) until Running, and over the whole size. */
  lostUntilRunning: number; leadershipLost: number;
  /** Undefined with --until-running (the drain's also with --no-drain). */
  drained?: number; migrations?: number; drainMs?: number; deleteMs?: number;
  /** vc-manager's CPU seconds in the drain and in the delete. */
  drainCpuS?: number; deleteCpuS?: number;
  /** The delete's store requests and reconciles, by controller (as byController and reconciles). */
  deleteRequests?: Map<string, number>; deleteReconciles?: Map<string, number>;
}

function nodeManifests(n: number): string {
  const docs: object[] = [{
    apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'busybox' },
    spec: { image: { path: '/san/templates/busybox.qcow2', format: 'qcow2' }, revision: 1 },
  } satisfies OSTemplate];
  for (let i = 1; i <= n; i++) {
    docs.push({
      apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name: `sim${i}` },
      spec: {
        address: `198.18.${i >> 8}.${i & 255}`, transport: 'sim', hypervisor: 'sim',
        capacity: { cores: 32, memoryMiB: 64 * 1024 }, storageRoot: '/san',
      },
    });
  }
  return docs.map((d) => toYaml(d)).join('---\n');
}

/** The i-th /29 from 10.16.0.0 (2,500 VCs take 10.16.0.0-10.16.78.31; the nodes are in 198.18/15). */
function vcSubnet(i: number): string {
  if (i >= 1 << 17) throw new Error(`--sizes: at most ${1 << 17} VCs fit in 10.16.0.0/12 as /29s`);
  const a = (16 << 16) + i * 8;
  return `10.${a >> 16}.${(a >> 8) & 255}.${a & 255}/29`;
}

function vcManifests(vcs: number): string {
  const docs: VirtualCluster[] = [];
  for (let i = 0; i < vcs; i++) {
    docs.push({
      apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: `vc${i}`, namespace: NS },
      spec: {
        nodes: VMS_PER_VC, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 64 },
        placement: { strategy: i % 2 ? 'Cyclic' : 'Block', mode: 'Strict' }, state: 'Running',
        // no shared volume: a sim host has no NFS server (nfs-ganesha) to serve it
        sharedStorage: { sizeGiB: 0, filesystem: 'none' },
        // A /29 each (room for 5 VMs): the default pool, 10.200.0.0/16 in /24s, holds 256 VCs.
        network: { subnet: vcSubnet(i) },
      },
    });
  }
  return docs.map((d) => toYaml(d)).join('---\n');
}

async function vcctl(args: string[], url: string): Promise<string> {
  const err = new PassThrough();
  const out = new PassThrough();
  let e = '';
  let o = '';
  err.on('data', (d: Buffer) => (e += d.toString()));
  out.on('data', (d: Buffer) => (o += d.toString()));
  const code = await vcctlMain(args, { stdout: out, stderr: err, stdin: Readable.from(['']), env: { ...process.env, VCCTL_STORE: url } });
  if (code !== 0) throw new Error(`vcctl ${args.join(' ')}: ${e}`);
  return o;
}

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** etcd's WAL fsyncs so far: count and total seconds. */
async function etcdFsyncs(etcd: EtcdHarness): Promise<{ n: number; s: number }> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  return {
    n: Number(/^etcd_disk_wal_fsync_duration_seconds_count (\S+)$/m.exec(text)?.[1] ?? 0),
    s: Number(/^etcd_disk_wal_fsync_duration_seconds_sum (\S+)$/m.exec(text)?.[1] ?? 0),
  };
}

async function etcdRequests(etcd: EtcdHarness): Promise<number> {
  let n = 0;
  for (const v of (await etcdRequestsByMethod(etcd)).values()) n += v;
  return n;
}

/** etcd's started gRPC requests of KV, Watch and Lease so far, by method. */
async function etcdRequestsByMethod(etcd: EtcdHarness): Promise<Map<string, number>> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^grpc_server_started_total\{([^}]*)\} (\S+)$/gm)) {
    const service = /grpc_service="etcdserverpb\.(KV|Watch|Lease)"/.exec(m[1]!)?.[1];
    const method = /grpc_method="([^"]+)"/.exec(m[1]!)?.[1];
    if (service && method) out.set(method, (out.get(method) ?? 0) + Number(m[2]));
  }
  return out;
}

/**
 * vc-manager's counters so far, from its /metrics: store requests by controller and operation
 * (vcm_store_requests_total) and reconciles by controller and result.
 */
async function managerCounts(metricsAddr: string): Promise<{ requests: Map<string, number>; reconciles: Map<string, number> }> {
  const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  const read = (metric: string, second: string): Map<string, number> => {
    const out = new Map<string, number>();
    for (const m of text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
      const k = `${/controller="([^"]+)"/.exec(m[1]!)?.[1] ?? '?'} ${new RegExp(`${second}="([^"]+)"`).exec(m[1]!)?.[1] ?? '?'}`;
      out.set(k, (out.get(k) ?? 0) + Number(m[2]));
    }
    return out;
  };
  return { requests: read('vcm_store_requests_total', 'op'), reconciles: read('vcm_reconcile_duration_seconds_count', 'result') };
}

/**
 * vc-manager's state for the progress lines: its largest work queues (vcm_workqueue_depth, ready
 * plus delayed) and its event loop's lag (prom-client's nodejs_eventloop_lag_p99_seconds), e.g.
 * `queues placement/virtualcluster 2412, storage 2380; loop lag p99 0.42 s`.
 */
async function managerState(metricsAddr: string): Promise<string> {
  const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  const depths = [...text.matchAll(/^vcm_workqueue_depth\{controller="([^"]+)"\} (\S+)$/gm)]
    .map((m) => [m[1]!, Number(m[2])] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 6);
  const lag = /^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1];
  // prom-client's default metrics: the V8 heap in use and reserved, and the RSS, in MiB
  const mib = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) / 1048576;
  const heap = `heap ${mib('nodejs_heap_size_used_bytes').toFixed(0)} of ${mib('nodejs_heap_size_total_bytes').toFixed(0)} MiB, RSS ${mib('process_resident_memory_bytes').toFixed(0)} MiB`;
  return `queues ${depths.map(([k, v]) => `${k} ${v}`).join(', ') || 'empty'}${lag ? `; loop lag p99 ${Number(lag).toFixed(2)} s` : ''}; ${heap}`;
}

function minus(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of a) if (v - (b.get(k) ?? 0) > 0) out.set(k, v - (b.get(k) ?? 0));
  return out;
}

/** A free TCP port on loopback for vc-manager's /metrics. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

/**
 * Follows a kind through one watch (started before the work, so nothing is missed) and resolves
 * when `done` holds of the objects as last seen; a lister never polls the store being measured.
 */
class Follower<T extends VirtualNode | Migration | PhysicalNode | VirtualCluster> {
  readonly objects = new Map<string, T>();
  /** Milestones: the time (performance.now()) each test first held of the objects, once asked for. */
  private readonly marks: { name: string; test: (m: Map<string, T>) => boolean; at?: number }[] = [];
  private waiter?: { test: (m: Map<string, T>) => boolean; resolve: () => void };
  private error?: Error;
  private close?: () => void;

  static async start<T extends VirtualNode | Migration | PhysicalNode | VirtualCluster>(store: Store, kind: string, namespace?: string): Promise<Follower<T>> {
    const f = new Follower<T>();
    const rev = await store.revision();
    for (const o of (await store.list<T>(kind, namespace ? { namespace } : {})).items) f.objects.set(o.metadata.name, o);
    const w = store.watch<T>(kind, { ...(namespace ? { namespace } : {}), fromRevision: rev + 1 }, {
      onEvent: (ev) => {
        if (ev.type === 'DELETED') f.objects.delete(ev.object.metadata.name);
        else f.objects.set(ev.object.metadata.name, ev.object);
        f.check();
      },
      onError: (err) => (f.error = err),
    });
    f.close = () => w.close();
    return f;
  }

  /** Notes when `test` first holds (checked on every event from now on). */
  mark(name: string, test: (m: Map<string, T>) => boolean): void {
    this.marks.push({ name, test });
  }

  /** The milestones reached, in ms after `t0`. */
  reached(t0: number): Map<string, number> {
    return new Map(this.marks.filter((m) => m.at !== undefined).map((m) => [m.name, m.at! - t0]));
  }

  private check(): void {
    for (const m of this.marks) if (m.at === undefined && m.test(this.objects)) m.at = performance.now();
    if (this.waiter?.test(this.objects)) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve();
    }
  }

  async until(what: string, test: (m: Map<string, T>) => boolean, manager: ChildProcess, limitMs: number, progress: () => string): Promise<void> {
    const t0 = performance.now();
    const done = new Promise<void>((r) => (this.waiter = { test, resolve: r }));
    this.check();
    let last = t0;
    for (;;) {
      if (await Promise.race([done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 500))])) return;
      if (this.error) throw new Error(`the watch ended: ${this.error.message}`);
      if (manager.exitCode !== null) throw new Error(`vc-manager exited ${manager.exitCode} while waiting for ${what}`);
      const now = performance.now();
      if (now - last > 15_000) {
        last = now;
        process.stderr.write(`  ${what}: ${progress()} after ${((now - t0) / 1000).toFixed(0)} s\n`);
      }
      if (now - t0 > limitMs) {
        throw new Error(`${what}: only ${progress()} after ${limitMs / 1000} s (--wait-limit); vc-manager ` +
          `${cpuSeconds(manager.pid!).toFixed(1)} CPU s since it started, peak RSS ${peakRssMiB(manager.pid!).toFixed(0)} MiB`);
      }
    }
  }

  stop(): void {
    this.close?.();
  }
}

const isRunning = (vn: VirtualNode): boolean => vn.status?.phase === 'Running' && vn.status.host === vn.spec?.physicalNode;

async function run(size: Size, drainFraction: number, work: string, etcdDir: string, untilRunning: boolean, noDrain: boolean, leaseTtl: number, limit: number): Promise<Result> {
  let leadershipLost = 0;
  const vcs = size.vms / VMS_PER_VC;
  const nodesFile = join(work, `nodes-${size.nodes}.yaml`);
  const vcsFile = join(work, `vcs-${vcs}.yaml`);
  writeFileSync(nodesFile, nodeManifests(size.nodes));
  writeFileSync(vcsFile, vcManifests(vcs));
  // etcd's data directory under etcdDir (default /dev/shm): what is measured is the control plane,
  // not the fsync latency of this machine's disk, which QEMU machines of other work share.
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = etcdDir;
  const etcd = await startEtcd().finally(() => {
    if (tmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmp;
  });
  let manager: ChildProcess | undefined;
  const followers: { stop(): void }[] = [];
  const label = `${size.nodes} nodes/${size.vms} VMs`;
  try {
    const store = await openStore(etcd.url);
    await vcctl(['apply', '-f', nodesFile], etcd.url);
    const pns = await Follower.start<PhysicalNode>(store, 'PhysicalNode');
    followers.push(pns);
    const prof = process.env.VL_BENCH_PROF_DIR;
    const heapProf = process.env.VL_BENCH_HEAP_PROF_DIR;
    const metricsAddr = `127.0.0.1:${await freePort()}`;
    manager = spawn(process.execPath, [...VC_MANAGER_NODE_FLAGS, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
      ...(heapProf ? ['--heap-prof', '--heap-prof-dir', heapProf] : []), '--import', 'tsx', join(ROOT, 'operator/vc-manager.ts'),
      '--store', etcd.url, '--identity', 'bench', '--metrics-addr', metricsAddr, '--log-level', 'warn', '--lease-ttl', String(leaseTtl)],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env } });
    // Its warnings are counted, not shown (errors are): a lost leadership ends the term, and the
    // next one hooks every controller again (each watch mapper over every cached object).
    let partial = '';
    // VL_BENCH_LOG=FILE: every line of its stderr (warnings included) appended there as well.
    const logFile = process.env.VL_BENCH_LOG;
    manager.stderr!.on('data', (d: Buffer) => {
      if (logFile) appendFileSync(logFile, d);
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.includes('"msg":"leadership lost"')) leadershipLost++;
        if (!/"level":"(trace|debug|info|warn)"/.test(line)) process.stderr.write(`${line}\n`);
      }
    });
    // The manager's queues and loop lag, sampled for the progress lines (every 15 s).
    let state = '';
    const sampler = setInterval(() => void managerState(metricsAddr).then((t) => (state = t), () => {}), 5_000);
    followers.push({ stop: () => clearInterval(sampler) });
    const ready = (p: PhysicalNode) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    await pns.until('nodes Ready', (m) => [...m.values()].filter(ready).length === size.nodes, manager, 300_000,
      () => `${[...pns.objects.values()].filter(ready).length} of ${size.nodes} Ready`);

    const vns = await Follower.start<VirtualNode>(store, 'VirtualNode', NS);
    followers.push(vns);
    const vcsSeen = await Follower.start<VirtualCluster>(store, 'VirtualCluster', NS);
    followers.push(vcsSeen);
    const allTrue = (type: string) => (m: Map<string, VirtualCluster>) => m.size === vcs &&
      [...m.values()].every((vc) => vc.status?.conditions?.some((c) => c.type === type && c.status === 'True'));
    vcsSeen.mark('StorageReady', allTrue('StorageReady'));
    vcsSeen.mark('NetworkReady', allTrue('NetworkReady'));
    const cpu0 = cpuSeconds(manager.pid!);
    const req0 = await etcdRequests(etcd);
    const byMethod0 = await etcdRequestsByMethod(etcd);
    const counts0 = await managerCounts(metricsAddr);
    const fs0 = await etcdFsyncs(etcd);
    const t0 = performance.now();
    await vcctl(['apply', '-f', vcsFile], etcd.url);
    const applyMs = performance.now() - t0;
    process.stderr.write(`  ${label}: applied ${vcs} VCs in ${(applyMs / 1000).toFixed(1)} s\n`);
    const count = (f: (vn: VirtualNode) => boolean) => [...vns.objects.values()].filter(f).length;
    await vns.until('Placed', (m) => m.size === size.vms && count((vn) => !!vn.spec?.physicalNode) === size.vms, manager, limit,
      () => `${count((vn) => !!vn.spec?.physicalNode)} of ${size.vms} bound (${vns.objects.size} exist; ${state})`);
    const placedMs = performance.now() - t0;
    await vns.until('Running', (m) => m.size === size.vms && count(isRunning) === size.vms, manager, limit,
      () => `${count(isRunning)} of ${size.vms} Running (${state})`);
    const runningMs = performance.now() - t0;
    const cpuS = cpuSeconds(manager.pid!) - cpu0;
    const etcdRequestsN = (await etcdRequests(etcd)) - req0;
    const byMethod = minus(await etcdRequestsByMethod(etcd), byMethod0);
    const counts1 = await managerCounts(metricsAddr);
    const byController = minus(counts1.requests, counts0.requests);
    const reconciles = minus(counts1.reconciles, counts0.reconciles);
    const fs1 = await etcdFsyncs(etcd);
    const fsyncMs = fs1.n > fs0.n ? ((fs1.s - fs0.s) / (fs1.n - fs0.n)) * 1000 : 0;
    process.stderr.write(`  ${label}: all Running in ${(runningMs / 1000).toFixed(1)} s\n`);
    const milestones = vcsSeen.reached(t0);
    const events = new Map<string, number>();
    for (const e of (await store.list<EventObject>('Event')).items) events.set(e.spec?.reason ?? '?', (events.get(e.spec?.reason ?? '?') ?? 0) + 1);
    const measured = { ...size, applyMs, placedMs, runningMs, cpuS, etcdRequests: etcdRequestsN, fsyncMs, byController, byMethod, reconciles, milestones, events, lostUntilRunning: leadershipLost };
    if (untilRunning) {
      const rssMiB = peakRssMiB(manager.pid!);
      await store.close();
      return { ...measured, rssMiB, leadershipLost };
    }

    // The peak so far at the end of each phase: where the whole run's peak was reached.
    const peaks = [`${peakRssMiB(manager.pid!).toFixed(0)} MiB until Running`];
    const cpu1 = cpuSeconds(manager.pid!);
    const drain = noDrain ? undefined : await drainNodes(store, etcd.url, size, drainFraction, vns, followers, manager, limit, () => state);
    if (drain) peaks.push(`${peakRssMiB(manager.pid!).toFixed(0)} MiB after the drain`);
    const cpu2 = cpuSeconds(manager.pid!);
    const counts2 = await managerCounts(metricsAddr);
    const t2 = performance.now();
    await vcctl(['delete', 'virtualcluster', '--all', '-n', NS], etcd.url);
    await vns.until('deleted', (m) => m.size === 0, manager, limit, () => `${vns.objects.size} VirtualNodes left (${state})`);
    const deleteMs = performance.now() - t2;
    const deleteCpuS = cpuSeconds(manager.pid!) - cpu2;
    const counts3 = await managerCounts(metricsAddr);
    const deleteRequests = minus(counts3.requests, counts2.requests);
    const deleteReconciles = minus(counts3.reconciles, counts2.reconciles);
    const rssMiB = peakRssMiB(manager.pid!);
    process.stderr.write(`  ${label}: vc-manager's peak RSS ${peaks.join(', ')}, ${rssMiB.toFixed(0)} MiB after the delete\n`);
    await store.close();
    return { ...measured, rssMiB, ...drain, ...(drain ? { drainCpuS: cpu2 - cpu1 } : {}), deleteMs, deleteCpuS, deleteRequests, deleteReconciles, leadershipLost };
  } finally {
    for (const f of followers) f.stop();
    if (manager && manager.exitCode === null) {
      const gone = new Promise((r) => manager!.once('exit', r));
      manager.kill('SIGTERM');
      await gone;
    }
    await etcd.stop();
  }
}

/**
 * Where the Migrations' time went: from created (by the drain) to begun (status.startTime: its
 * worker free, the target's tap in place) and from begun to Succeeded (the transfer and the writes
 * after it), as median and 90th percentile.
 */
function migrationPhases(ms: readonly Migration[]): string {
  const waits: number[] = [];
  const runs: number[] = [];
  for (const m of ms) {
    const created = Date.parse(m.metadata.creationTimestamp ?? '');
    const begun = Date.parse(m.status?.startTime ?? '');
    const done = Date.parse(m.status?.completionTime ?? '');
    if (Number.isFinite(created) && Number.isFinite(begun)) waits.push(begun - created);
    if (Number.isFinite(begun) && Number.isFinite(done)) runs.push(done - begun);
  }
  const f = (xs: number[]) => `median ${(percentile(xs, 50) / 1000).toFixed(2)} s, p90 ${(percentile(xs, 90) / 1000).toFixed(2)} s`;
  return `migrations: created to begun ${f(waits)}; begun to Succeeded ${f(runs)}`;
}

/**
 * A drain of a tenth (drainFraction) of the nodes, a few `vcctl drain` at a time, and the time
 * until every Migration Succeeded and every VM runs off the drained nodes.
 */
async function drainNodes(
  store: Store, url: string, size: Size, drainFraction: number, vns: Follower<VirtualNode>, followers: { stop(): void }[],
  manager: ChildProcess, limit: number, state: () => string,
): Promise<{ drained: number; migrations: number; drainMs: number }> {
  const count = (f: (vn: VirtualNode) => boolean) => [...vns.objects.values()].filter(f).length;
  const migs = await Follower.start<Migration>(store, 'Migration', NS);
  followers.push(migs);
  const drained = Math.max(1, Math.round(size.nodes * drainFraction));
  const t1 = performance.now();
  const drainedNames = Array.from({ length: drained }, (_, i) => `sim${i + 1}`);
  // Cordoned together first, so that no drain picks another drained node as a target.
  await vcctl(['cordon', ...drainedNames], url);
  const queue = [...drainedNames];
  // Two at a time; a drain whose reservation lost a race with the other (Conflict) runs again.
  await Promise.all(Array.from({ length: 2 }, async () => {
    for (let n = queue.shift(); n; n = queue.shift()) {
      for (let attempt = 1; ; attempt++) {
        try {
          await vcctl(['drain', n], url);
          break;
        } catch (err) {
          if (attempt >= 10 || !/was modified/.test((err as Error).message)) throw err;
        }
      }
    }
  }));
  const drainedSet = new Set(drainedNames);
  const moved = (m: Map<string, VirtualNode>) => [...m.values()].every((vn) => !drainedSet.has(vn.spec?.physicalNode ?? '') && isRunning(vn));
  const succeeded = (m: Map<string, Migration>) => [...m.values()].every((x) => x.status?.phase === 'Succeeded' || x.status?.phase === 'Failed');
  await migs.until('migrations', (m) => succeeded(m), manager, limit,
    () => `${[...migs.objects.values()].filter((x) => x.status?.phase === 'Succeeded').length} of ${migs.objects.size} Succeeded (${state()})`);
  const failed = [...migs.objects.values()].filter((x) => x.status?.phase === 'Failed');
  if (failed.length) throw new Error(`${failed.length} migrations Failed, e.g. ${failed[0]!.metadata.name}: ${failed[0]!.status?.message}`);
  await vns.until('drained', moved, manager, limit, () => `${count((vn) => drainedSet.has(vn.spec?.physicalNode ?? ''))} still on drained nodes (${state()})`);
  const drainMs = performance.now() - t1;
  const migrations = migs.objects.size;
  process.stdout.write(`  ${migrationPhases([...migs.objects.values()])}\n`);
  return { drained, migrations, drainMs };
}

function parseSizes(text: string): Size[] {
  return text.split(',').map((s) => {
    const [nodes, vms] = s.split(':').map(Number);
    if (!Number.isInteger(nodes) || nodes! < 1 || !Number.isInteger(vms) || vms! < VMS_PER_VC || vms! % VMS_PER_VC) {
      throw new Error(`--sizes: ${JSON.stringify(s)} is not NODES:VMS with VMS a positive multiple of ${VMS_PER_VC}`);
    }
    return { nodes: nodes!, vms: vms! };
  });
}

const s = (ms: number): string => (ms / 1000).toFixed(1);

/** The largest entries of `m` divided by `vms`, as `name 1.23`. */
function perVm(m: Map<string, number>, vms: number): string {
  return [...m].sort((a, b) => b[1] - a[1]).filter(([, v]) => v / vms >= 0.05).map(([k, v]) => `${k} ${(v / vms).toFixed(2)}`).join(', ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '100:1000,1000:10000' }, 'drain-fraction': { type: 'string', default: '0.1' }, 'etcd-dir': { type: 'string', default: '/dev/shm' }, 'until-running': { type: 'boolean', default: false }, 'no-drain': { type: 'boolean', default: false }, 'lease-ttl': { type: 'string', default: '60' }, 'wait-limit': { type: 'string', default: '20' } } });
  const waitLimitMin = Number(values['wait-limit']);
  if (!(waitLimitMin > 0)) throw new Error(`--wait-limit: minutes, more than 0, got ${values['wait-limit']}`);
  const leaseTtl = Number(values['lease-ttl']);
  if (!Number.isInteger(leaseTtl) || leaseTtl < 1) throw new Error(`--lease-ttl: whole seconds, at least 1, got ${values['lease-ttl']}`);
  const sizes = parseSizes(values.sizes);
  const drainFraction = Number(values['drain-fraction']);
  if (!(drainFraction > 0 && drainFraction < 1)) throw new Error(`--drain-fraction must be between 0 and 1, got ${values['drain-fraction']}`);
  const work = mkdtempSync(join(tmpdir(), 'vl-bench-scale-'));
  const results: Result[] = [];
  try {
    for (const size of sizes) {
      const r = await run(size, drainFraction, work, values['etcd-dir'], values['until-running'], values['no-drain'], leaseTtl, waitLimitMin * 60_000);
      results.push(r);
      process.stdout.write(`${r.nodes} sim nodes, ${r.vms} VMs (${r.vms / VMS_PER_VC} VCs): apply ${s(r.applyMs)} s; all Placed ${s(r.placedMs)} s; all Running ${s(r.runningMs)} s; ` +
        `vc-manager ${r.cpuS.toFixed(1)} CPU s until Running, peak RSS ${r.rssMiB.toFixed(0)} MiB; etcd requests ${r.etcdRequests} (WAL fsync mean ${r.fsyncMs.toFixed(2)} ms)` +
        (r.deleteMs === undefined ? ' (--until-running: no drain, no delete)\n'
          : `${r.drainMs === undefined ? '; no drain (--no-drain)' : `; drain of ${r.drained} nodes (${r.migrations} migrations) ${s(r.drainMs)} s (${r.drainCpuS!.toFixed(1)} CPU s)`}; ` +
            `delete of everything ${s(r.deleteMs)} s (${r.deleteCpuS!.toFixed(1)} CPU s)\n`));
      process.stdout.write(`  vc-manager lost its leadership ${r.lostUntilRunning} times until all Running, ${r.leadershipLost} in all (--lease-ttl ${leaseTtl} s)\n`);
      process.stdout.write(`  every VC ${[...r.milestones].map(([k, v]) => `${k} ${s(v)} s`).join(', ') || '(no StorageReady/NetworkReady milestone seen)'} after apply\n`);
      process.stdout.write(`  etcd requests per VM until Running, by method: ${perVm(r.byMethod, r.vms)}\n`);
      process.stdout.write(`  store requests per VM until Running, by controller and operation: ${perVm(r.byController, r.vms)}\n`);
      process.stdout.write(`  reconciles per VM until Running, by controller and result: ${perVm(r.reconciles, r.vms)}\n`);
      process.stdout.write(`  Events stored per VM once all Running, by reason: ${perVm(r.events, r.vms)}\n`);
      if (r.deleteRequests) process.stdout.write(`  store requests per VM in the delete, by controller and operation: ${perVm(r.deleteRequests, r.vms)}\n`);
      if (r.deleteReconciles) process.stdout.write(`  reconciles per VM in the delete, by controller and result: ${perVm(r.deleteReconciles, r.vms)}\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const small = results[0]!;
  const big = results[results.length - 1]!;
  if (results.length > 1) {
    const g = (a: number, b: number): string => `x${(b / a).toFixed(2)}`;
    process.stdout.write(`growth ${small.vms} -> ${big.vms} VMs (work x${(big.vms / small.vms).toFixed(1)}): apply ${g(small.applyMs, big.applyMs)}, Placed ${g(small.placedMs, big.placedMs)}, ` +
      `Running ${g(small.runningMs, big.runningMs)}, CPU ${g(small.cpuS, big.cpuS)}, etcd requests ${g(small.etcdRequests, big.etcdRequests)}` +
      (small.drainMs !== undefined && big.drainMs !== undefined ? `, drain ${g(small.drainMs, big.drainMs)} (CPU ${g(small.drainCpuS!, big.drainCpuS!)})` : '') +
      (small.deleteMs !== undefined && big.deleteMs !== undefined ? `, delete ${g(small.deleteMs, big.deleteMs)} (CPU ${g(small.deleteCpuS!, big.deleteCpuS!)})` : '') + '\n');
  }
  process.stdout.write(`scale: ${big.vms} VMs Running in ${s(big.runningMs)} s (${small.vms} VMs in ${s(small.runningMs)} s at the small size, ` +
    `growth ${(big.runningMs / small.runningMs).toFixed(1)}x), peak RSS ${big.rssMiB.toFixed(0)} MiB\n`);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`hack/bench-scale: ${(err as Error).stack ?? (err as Error).message}\n`);
  process.exit(1);
});
