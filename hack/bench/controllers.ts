// Controller runtime benchmark on a real etcd (hack/bench-controllers). Prints each figure with
// the baseline measured in the same run:
//   1. cold start over N VirtualClusters: manager start -> caches listed and synced -> controllers
//      running (leader election included); baseline: one bare etcd3 range read of the same keys.
//   2. no-op reconcile throughput vs the event rate of a bare etcd3 watcher on the same keys, both
//      running while every VC is updated once (target ratio >= 0.5).
//   3. put-to-reconcile latency p50/p99 (target p99 < 50 ms); baseline: put-to-event latency of
//      the bare watcher for the same puts.
//   4. informer cache memory per object beyond its JSON size (target < 1 KiB); needs --expose-gc.
// Usage: hack/bench-controllers [--objects 10000] [--latency-puts 500]

import { Etcd3 } from 'etcd3';
import { startEtcd } from '../lib/etcd-harness.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import type { BatchOp } from '../../api/store/types.js';
import { API_VERSION, type VirtualCluster } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { Informer } from '../../controllers/informer.js';
import type { ControllerSpec } from '../../controllers/types.js';
import { percentile } from './stats.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const N = arg('objects', 10_000);
const LATENCY_PUTS = arg('latency-puts', 500);
const NAMESPACES = 10;

function vc(i: number, gen = 0): VirtualCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualCluster',
    metadata: { name: `vc-${i}`, namespace: `ns-${i % NAMESPACES}`, labels: { team: `t${i % 7}`, 'virtualinux.org/bench': 'yes' } },
    spec: {
      nodes: 4, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 128 },
      network: { subnet: `10.${(i >> 8) & 255}.${i & 255}.0/24` }, sharedStorage: { sizeGiB: 1, filesystem: 'nfs' },
      placement: { strategy: i % 2 ? 'Block' : 'Cyclic', mode: 'Strict' }, state: 'Running',
      firstBoot: { script: `echo ${gen}` },
    },
  };
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
const gc = (globalThis as { gc?: () => void }).gc;

let phase = 'start';
function enter(p: string): void {
  phase = p;
  process.stderr.write(`[bench-controllers] ${p}\n`);
}

async function main(): Promise<void> {
  // A stuck phase should say which it was rather than hang the caller.
  setTimeout(() => {
    process.stderr.write(`bench-controllers: no progress for 5 minutes in phase "${phase}"\n`);
    process.exit(2);
  }, 300_000).unref();
  const etcd = await startEtcd();
  const store = await EtcdStore.connect({ endpoints: etcd.endpoints });
  // Same message limits as EtcdStore, so the baseline can read what the store reads.
  const bare = new Etcd3({ hosts: etcd.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
  try {
    const prefix = store.kindPrefix('VirtualCluster');
    process.stdout.write(`seeding ${N} VirtualClusters into etcd ${etcd.url} ...\n`);
    for (let i = 0; i < N; i += 1000) {
      const ops: BatchOp[] = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) ops.push({ op: 'create', object: vc(j) });
      await store.batch(ops);
    }

    enter('cold start');
    // ---- 1. cold start -------------------------------------------------------------------------
    let t = performance.now();
    const raw = await bare.getAll().prefix(prefix).buffers();
    const bareRange = performance.now() - t;
    const rawCount = Object.keys(raw).length;

    const seen = new Map<string, number>(); // key -> last reconciled resourceVersion
    const reconcileTimes: number[] = [];
    let onReconcile: ((key: string, rv: number) => void) | undefined;
    const noop: ControllerSpec = {
      name: 'bench-noop', forKind: 'VirtualCluster', workers: 2, resyncMs: 0,
      async reconcile(key, ctx) {
        const o = ctx.cache.get<VirtualCluster>(key);
        const k = `${key.namespace}/${key.name}`;
        const rv = Number(o?.metadata.resourceVersion ?? 0);
        seen.set(k, rv);
        reconcileTimes.push(performance.now());
        onReconcile?.(k, rv);
      },
    };
    t = performance.now();
    const manager = new ControllerManager({ store, identity: 'bench', specs: [noop], leaseTtlSeconds: 10, eventCleanupMs: 0 });
    await manager.start();
    const inf = manager.cache.informer('VirtualCluster');
    await inf.waitForSync();
    const synced = performance.now() - t;
    while (!manager.isReady()) await new Promise((r) => setTimeout(r, 1));
    const ready = performance.now() - t;
    while (seen.size < N) await new Promise((r) => setTimeout(r, 1));
    const allReconciled = performance.now() - t;
    process.stdout.write(
      `cold start over ${inf.size()} VirtualClusters: list+sync ${ms(synced)}, leader and controllers running ${ms(ready)} ` +
        `(target < 2000 ms); every key reconciled once ${ms(allReconciled)}\n` +
        `  baseline: bare etcd3 range of the same ${rawCount} keys ${ms(bareRange)}\n`,
    );

    enter('throughput');
    // ---- 2. throughput vs a bare watcher -------------------------------------------------------
    const startRev = await store.revision();
    const watchTimes: number[] = [];
    let onWatchEvent: ((key: string, at: number) => void) | undefined;
    const watcher = await bare.watch().prefix(prefix).startRevision(String(startRev + 1)).create();
    watcher.on('put', (kv) => {
      const at = performance.now();
      watchTimes.push(at);
      onWatchEvent?.(kv.key.toString(), at);
    });
    reconcileTimes.length = 0;
    const targetRv = new Map<string, number>();
    let pending = N;
    let allDone!: () => void;
    const done = new Promise<void>((r) => { allDone = r; });
    onReconcile = (k, rv) => {
      const want = targetRv.get(k);
      if (want !== undefined && rv >= want) {
        targetRv.delete(k);
        if (--pending === 0) allDone();
      }
    };
    const tw = performance.now();
    for (let i = 0; i < N; i += 500) {
      const ops: BatchOp[] = [];
      const objs: VirtualCluster[] = [];
      for (let j = i; j < Math.min(N, i + 500); j++) {
        const o = vc(j, 1);
        objs.push(o);
        ops.push({ op: 'update', object: o });
      }
      const res = await store.batch(ops);
      for (const r of res) targetRv.set(`${r.metadata.namespace}/${r.metadata.name}`, Number(r.metadata.resourceVersion));
    }
    const writeMs = performance.now() - tw;
    // Keys reconciled before their target was recorded.
    for (const [k, want] of [...targetRv]) {
      if ((seen.get(k) ?? 0) >= want) { targetRv.delete(k); pending--; }
    }
    if (pending > 0) await done;
    while (watchTimes.length < N) await new Promise((r) => setTimeout(r, 1));
    const span = (xs: number[]) => (xs[xs.length - 1] as number) - (xs[0] as number);
    const watchRate = (watchTimes.length / span(watchTimes)) * 1000;
    const reconcileRate = (reconcileTimes.length / span(reconcileTimes)) * 1000;
    const lastWatch = watchTimes[watchTimes.length - 1] as number;
    const lastReconcile = reconcileTimes[reconcileTimes.length - 1] as number;
    process.stdout.write(
      `throughput while updating every VC once (${N} puts in ${ms(writeMs)}):\n` +
        `  no-op reconciles ${reconcileTimes.length} at ${reconcileRate.toFixed(0)}/s; ` +
        `baseline: bare etcd3 watcher ${watchTimes.length} events at ${watchRate.toFixed(0)}/s; ` +
        `ratio ${(reconcileRate / watchRate).toFixed(2)} (target >= 0.5); last reconcile ${ms(lastReconcile - lastWatch)} after the last watch event\n`,
    );

    enter('latency');
    // ---- 3. put-to-reconcile latency -----------------------------------------------------------
    const reconLat: number[] = [];
    const watchLat: number[] = [];
    for (let i = 0; i < LATENCY_PUTS; i++) {
      const idx = i % N;
      const o = vc(idx, 2 + i);
      const key = `ns-${idx % NAMESPACES}/vc-${idx}`;
      const etcdKey = `${prefix}${key}`;
      const t0 = performance.now();
      const gotReconcile = new Promise<void>((r) => {
        onReconcile = (k) => { if (k === key) { reconLat.push(performance.now() - t0); r(); } };
      });
      const gotWatch = new Promise<void>((r) => {
        onWatchEvent = (k, at) => { if (k === etcdKey) { watchLat.push(at - t0); r(); } };
      });
      await store.update(o);
      await Promise.all([gotReconcile, gotWatch]);
      await new Promise((r) => setTimeout(r, 2));
    }
    process.stdout.write(
      `put-to-reconcile latency over ${LATENCY_PUTS} single puts: p50 ${ms(percentile(reconLat, 50))}, p99 ${ms(percentile(reconLat, 99))} (target p99 < 50 ms)\n` +
        `  baseline: put-to-bare-watch-event p50 ${ms(percentile(watchLat, 50))}, p99 ${ms(percentile(watchLat, 99))}\n`,
    );
    onReconcile = undefined;
    onWatchEvent = undefined;
    await watcher.cancel();
    await manager.stop();

    enter('memory');
    // ---- 4. cache memory per object ------------------------------------------------------------
    if (!gc) {
      process.stdout.write('cache memory: skipped (run with node --expose-gc, as hack/bench-controllers does)\n');
    } else {
      const { items } = await store.list<VirtualCluster>('VirtualCluster');
      const jsonBytes = items.reduce((s, o) => s + Buffer.byteLength(JSON.stringify(o)), 0) / items.length;
      items.length = 0;
      gc(); gc();
      const before = process.memoryUsage().heapUsed;
      const mem = new Informer(store, 'VirtualCluster');
      mem.start();
      await mem.waitForSync();
      await new Promise((r) => setTimeout(r, 200));
      gc(); gc();
      const after = process.memoryUsage().heapUsed;
      const perObject = (after - before) / mem.size();
      process.stdout.write(
        `cache memory: ${(perObject).toFixed(0)} B per object held, JSON ${jsonBytes.toFixed(0)} B; ` +
          `overhead beyond JSON ${(perObject - jsonBytes).toFixed(0)} B per object (target < 1024 B)\n`,
      );
      mem.stop();
    }
  } finally {
    bare.close();
    await store.close();
    await etcd.stop();
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench-controllers: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
