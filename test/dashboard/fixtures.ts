// A dashboard on a real embedded store, without a testbed: objects written straight into the store
// (as the controllers would), a SharedCache over it, the dashboard's server on a free loopback
// port, and an SSE reader for the HTTP tests.

import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type Migration, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { startDashboard, type Dashboard } from '../../dashboard/server.js';
import { physicalNode, virtualCluster, virtualNode } from '../placement/fixtures.js';

export const TOKEN = 'test-token-0123456789abcdef';
/** What a hostile user writes into an annotation and a name-like field. */
export const MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>';

export interface DashboardBed {
  dir: string;
  storeUrl: string;
  store: Store;
  dashboard: Dashboard;
  /** The informers the dashboard reads (no controller runs here: only what it asked for). */
  cache: SharedCache;
  close(): Promise<void>;
}

/** Two nodes, one VC "web" of two VMs (web-0 on n1, web-1 on n2) with markup in an annotation. */
export async function seed(store: Store): Promise<void> {
  await store.create<PhysicalNode>({ ...physicalNode('n1', 4, 4096, { maxVMs: 4 }), status: { ...physicalNode('n1', 4, 4096).status, allocated: { cores: 1, memoryMiB: 256, vms: 1 } } });
  await store.create<PhysicalNode>({ ...physicalNode('n2', 4, 4096, { maxVMs: 4 }), status: { ...physicalNode('n2', 4, 4096).status, allocated: { cores: 1, memoryMiB: 256, vms: 1 } } });
  const vc = virtualCluster('web', 2, 1, 256, 'Cyclic', 'Lazy');
  await store.create<VirtualCluster>({ ...vc, metadata: { ...vc.metadata, annotations: { description: MARKUP } } });
  for (const [i, node] of [[0, 'n1'], [1, 'n2']] as const) {
    const vn = virtualNode(vc, i);
    await store.create<VirtualNode>({ ...vn, spec: { ...vn.spec!, physicalNode: node }, status: { phase: 'Running', host: node, ip: `10.200.0.${i + 2}` } });
  }
}

export async function startBed(opts: { token?: boolean } = {}): Promise<DashboardBed> {
  const dir = mkdtempSync(join(tmpdir(), 'vl-dash-'));
  const path = join(dir, 'store.db');
  const store = new SqliteStore(path, { pollIntervalMs: 10 });
  await seed(store);
  const cache = new SharedCache(store);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  cache.start();
  const dashboard = await startDashboard({ addr: '127.0.0.1:0', source: cache, storeUrl: `file:${path}`, token: opts.token ? TOKEN : undefined });
  return {
    dir, storeUrl: `file:${path}`, store, dashboard, cache,
    async close() {
      await dashboard.close();
      cache.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SseReader {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The next event of that name (events before it are dropped). */
  next(event: string, timeoutMs?: number): Promise<unknown>;
  close(): void;
}

/** `onEvent` also sees every event as it arrives, with its arrival time. */
export function readSse(url: string, onEvent?: (event: string, data: unknown, atMs: number) => void): Promise<SseReader> {
  return new Promise((ok, fail) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      const queue: { event: string; data: unknown }[] = [];
      let waiter: (() => void) | undefined;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) {
            const parsed = JSON.parse(data) as unknown;
            queue.push({ event, data: parsed });
            onEvent?.(event, parsed, Date.now());
          }
        }
        waiter?.();
      });
      ok({
        status: res.statusCode ?? 0,
        headers: res.headers,
        async next(event, timeoutMs = 5000) {
          const end = Date.now() + timeoutMs;
          for (;;) {
            const i = queue.findIndex((q) => q.event === event);
            if (i >= 0) return queue.splice(0, i + 1).at(-1)!.data;
            const left = end - Date.now();
            if (left <= 0) throw new Error(`no "${event}" event within ${timeoutMs} ms`);
            await new Promise<void>((r) => { waiter = r; setTimeout(r, left); });
          }
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', fail);
    req.end();
  });
}

export function migration(name: string, vn: string, target: string, status: Migration['status']): Migration {
  return { apiVersion: API_VERSION, kind: 'Migration', metadata: { name, namespace: 'default' }, spec: { virtualNode: vn, targetNode: target }, status };
}
