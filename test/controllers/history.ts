// A history recorder for fault tests: it watches kinds from a revision on, resuming after a broken
// watch from the last revision it saw (never re-listing, so no change is missed or invented), and
// checks what a run must never do: lose an acknowledged write, create an object twice, bind a
// VirtualNode to a second node, or put more on a node than its capacity at any revision.

import assert from 'node:assert/strict';
import type { ApiObject, PhysicalNode, VirtualNode } from '../../api/types.js';
import type { Store, Watch, WatchEvent } from '../../api/store/types.js';
import type { SharedCache } from '../../controllers/cache.js';

export interface History {
  events: WatchEvent[];
  stop(): void;
}

export function recordHistory(store: Store, kinds: string[], fromRevision: number): History {
  const events: WatchEvent[] = [];
  const watches = new Map<string, Watch>();
  let stopped = false;
  const start = (kind: string, from: number): void => {
    let last = from - 1;
    watches.set(kind, store.watch(kind, { fromRevision: from }, {
      onEvent: (ev) => {
        last = ev.revision;
        events.push({ ...ev, object: { ...ev.object, kind } });
      },
      onError: () => {
        if (!stopped) setTimeout(() => { if (!stopped) start(kind, last + 1); }, 200);
      },
    }));
  };
  for (const k of kinds) start(k, fromRevision);
  return {
    events,
    stop() {
      stopped = true;
      for (const w of watches.values()) w.close();
    },
  };
}

const keyOf = (o: ApiObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/**
 * The history checks: each object ADDED once (nothing written twice); no VirtualNode bound to a
 * second node; at no revision more cores or memory on a node than it has; every acknowledged
 * write (`acked`: objects as returned by the store) present with its uid at the end.
 */
export async function checkHistory(store: Store, h: History, acked: ApiObject[], nodes: PhysicalNode[]): Promise<{ events: number; maxCores: number }> {
  const byRev = [...h.events].sort((a, b) => a.revision - b.revision);
  const added = new Map<string, number>();
  const bound = new Map<string, string>();
  const vns = new Map<string, VirtualNode>();
  let maxCores = 0;
  for (let i = 0; i < byRev.length; i++) {
    const ev = byRev[i]!;
    const k = keyOf(ev.object);
    if (ev.type === 'ADDED') {
      added.set(k, (added.get(k) ?? 0) + 1);
      assert.equal(added.get(k), 1, `${k} was created twice (revision ${ev.revision})`);
    }
    if (ev.object.kind === 'VirtualNode') {
      const vn = ev.object as VirtualNode;
      if (ev.type === 'DELETED') vns.delete(k);
      else {
        vns.set(k, vn);
        const node = vn.spec?.physicalNode;
        if (node) {
          const before = bound.get(k);
          assert.ok(!before || before === node, `${k} bound to ${before} and then to ${node}: it would run twice`);
          bound.set(k, node);
        }
      }
    }
    // Usage after every revision (a batch is one revision: check once its last event is in).
    if (byRev[i + 1]?.revision === ev.revision) continue;
    const use = new Map<string, { cores: number; mem: number }>();
    for (const v of vns.values()) {
      const n = v.spec?.physicalNode;
      if (!n) continue;
      const u = use.get(n) ?? { cores: 0, mem: 0 };
      u.cores += v.spec!.vcpus;
      u.mem += v.spec!.memoryMiB;
      use.set(n, u);
    }
    for (const pn of nodes) {
      const u = use.get(pn.metadata.name) ?? { cores: 0, mem: 0 };
      maxCores = Math.max(maxCores, u.cores);
      assert.ok(u.cores <= pn.spec!.capacity.cores, `${pn.metadata.name} overcommitted at revision ${ev.revision}: ${u.cores} cores of ${pn.spec!.capacity.cores}`);
      assert.ok(u.mem <= pn.spec!.capacity.memoryMiB, `${pn.metadata.name} overcommitted at revision ${ev.revision}: ${u.mem} MiB`);
    }
  }
  for (const o of acked) {
    const now = await store.tryGet({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
    assert.ok(now, `acknowledged write of ${keyOf(o)} (revision ${o.metadata.resourceVersion}) is lost`);
    assert.equal(now.metadata.uid, o.metadata.uid, `${keyOf(o)} was replaced`);
  }
  return { events: byRev.length, maxCores };
}

/** Waits until every informer of the cache holds exactly what a fresh list returns (names and versions). */
export async function cacheMatchesList(store: Store, cache: SharedCache, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const diffs: string[] = [];
    for (const kind of cache.kinds()) {
      const fresh = new Map((await store.list(kind)).items.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion]));
      const cached = new Map(cache.list(kind).map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion]));
      for (const [k, v] of fresh) if (cached.get(k) !== v) diffs.push(`${kind} ${k}: list ${v}, cache ${cached.get(k) ?? 'absent'}`);
      for (const k of cached.keys()) if (!fresh.has(k)) diffs.push(`${kind} ${k}: cached but not listed`);
    }
    if (diffs.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the informer cache differs from a fresh list: ${diffs.slice(0, 10).join('; ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
