// Helpers shared by the controller tests.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION, type EventObject, type EventSpec, type VirtualCluster } from '../../api/types.js';
import { parseStoreUrl } from '../../api/store/open-store.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { Store } from '../../api/store/types.js';

/** Polls `f` until it returns a truthy value or the timeout passes (then throws, naming `what`). */
export async function waitFor<T>(what: string, f: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits for an Event on `involved` that `matches`, flushing the manager's recorder each time. A
 * controller records its Event after its status write returns, so a read that already sees the
 * status can come before the Event: one read right after is a race (it failed CI once).
 */
export async function waitForEvent(
  store: Store, manager: { flushEvents(): Promise<void> }, involved: string,
  matches: (e: EventSpec) => boolean, what: string, timeoutMs = 10_000,
): Promise<EventSpec> {
  return waitFor(what, async () => {
    await manager.flushEvents();
    return (await store.list<EventObject>('Event')).items
      .map((e) => e.spec).find((e) => e?.involvedObject.name === involved && matches(e));
  }, timeoutMs);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function virtualCluster(name: string, nodes: number, namespace = 'default'): VirtualCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualCluster',
    metadata: { name, namespace },
    spec: {
      nodes, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 128 },
      placement: { strategy: 'Block', mode: 'Strict' }, state: 'Running',
    },
  };
}

/**
 * Opens a store by URL with static imports. Under mocha's loader, openStore's lazy import of the
 * etcd backend loads a second copy of api/store/types.ts, so `instanceof FencedError` would fail.
 */
export async function openTestStore(url: string): Promise<Store> {
  const loc = parseStoreUrl(url);
  return loc.backend === 'etcd' ? EtcdStore.connect(loc.options) : new SqliteStore(loc.path);
}

export interface TempSqliteStore {
  store: SqliteStore;
  /** The database file, for `--store file:PATH`. */
  path: string;
  /** Closes the store and removes its directory. */
  close(): Promise<void>;
}

/** An embedded store in a fresh temporary directory. */
export function tempSqliteStore(pollIntervalMs = 10): TempSqliteStore {
  const dir = mkdtempSync(join(tmpdir(), 'vl-ctl-'));
  const path = join(dir, 'store.db');
  const store = new SqliteStore(path, { pollIntervalMs });
  return { store, path, async close() { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
}
