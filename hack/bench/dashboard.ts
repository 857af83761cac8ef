// hack/bench-dashboard: how soon the dashboard shows a change made in the store (issue 21: a
// migration's VM is in its new box "within 2 s, without a reload").
//
// Figure: write-to-screen latency: a VirtualNode's status.host is written to the real embedded
// store; the time until chromium's DOM has the VM's box under the new node (observed in the page by
// a MutationObserver-driven wait, on the page's clock, which is this machine's). N moves,
// median / p95 / max.
// Baselines in the same run, for the same writes: (a) the store's watch alone, write to an informer
// handler in this process (the floor: nothing can show a change before the watch delivers it);
// (b) write to the `change` frame arriving at an SSE client in this process (the server's share).
//
// usage: hack/bench-dashboard [--moves N]

import { parseArgs } from 'node:util';
import type { VirtualNode } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { openDashboard } from '../../test/dashboard/browser.js';
import { readSse, startBed } from '../../test/dashboard/fixtures.js';

const { values } = parseArgs({ options: { moves: { type: 'string', default: '20' } } });
const MOVES = Number(values.moves);

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms, max ${s[s.length - 1]!.toFixed(0)} ms (n=${s.length})`;
}

async function main(): Promise<void> {
  const bed = await startBed();
  const watchCache = new SharedCache(bed.store);
  const browser = await openDashboard(bed.dashboard.url);
  const sse = await readSse(`${bed.dashboard.url}api/events`);
  try {
    await sse.next('snapshot');
    const inf = watchCache.informer<VirtualNode>('VirtualNode');
    let onWatch: ((host: string | undefined) => void) | undefined;
    inf.addHandlers({ onUpdate: (_a, b) => { if (b.metadata.name === 'web-1') onWatch?.(b.status?.host); } });
    watchCache.start();
    await watchCache.waitForSync();

    const screen: number[] = [];
    const watch: number[] = [];
    const server: number[] = [];
    const ref = { kind: 'VirtualNode', namespace: 'default', name: 'web-1' };
    for (let i = 0; i < MOVES; i++) {
      const to = i % 2 === 0 ? 'n1' : 'n2';
      const vn = await bed.store.get<VirtualNode>(ref);
      const watched = new Promise<number>((ok) => { onWatch = (h) => { if (h === to) ok(Date.now()); }; });
      const shown = browser.page.waitForFunction((node: string) => document.querySelector(`.node[data-node="${node}"] .vm[data-vm="default/web-1"]`) ? Date.now() : 0,
        { polling: 'mutation', timeout: 10_000 }, to);
      const t0 = Date.now();
      await bed.store.updateStatus<VirtualNode>({ ...vn, status: { ...vn.status, host: to } });
      const framed = (async () => {
        for (;;) {
          const c = (await sse.next('change', 10_000)) as { object: { name: string; host?: string } };
          if (c.object.name === 'web-1' && c.object.host === to) return Date.now();
        }
      })();
      const [tw, tf, ts] = await Promise.all([watched, framed, shown.then((h) => h.jsonValue() as Promise<number>)]);
      watch.push(tw - t0);
      server.push(tf - t0);
      screen.push(ts - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`dashboard write-to-screen (chromium DOM):        ${stats(screen)}`);
    console.log(`baseline (b) write-to-SSE frame (server share): ${stats(server)}`);
    console.log(`baseline (a) write-to-watch (store's floor):    ${stats(watch)}`);
    if (browser.problems.length) console.log(`page problems: ${browser.problems.join('; ')}`);
  } finally {
    sse.close();
    watchCache.stop();
    await browser.close();
    await bed.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
