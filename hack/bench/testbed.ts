// hack/bench-testbed: see the wrapper. Seconds from `up` to every node Ready in a real vc-manager
// (nodes controller), for full nodes (QEMU + Xen + Debian dom0) and, in the same run, for the
// namespace testbed as the baseline; and the memory each full node's QEMU holds once Ready.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildNodeImage } from '../lib/node-image.js';
import { startNodesManager } from '../lib/nodes-manager.js';
import { testbedDown, testbedUp, type TestbedState, type TestbedUpOptions } from '../lib/testbed.js';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '3' }, 'node-memory-mib': { type: 'string' }, 'skip-namespace': { type: 'boolean', default: false }, 'ready-limit': { type: 'string', default: '420' } },
});
const NODES = Number(values.nodes);
/** How long vc-manager gets to make every node Ready once up has returned. */
const READY_LIMIT_S = Number(values['ready-limit']);
const say = (m: string) => process.stdout.write(m + '\n');

async function rssMiB(pid: number): Promise<number> {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** up, then a vc-manager until every node is Ready, prints the times, runs `during`; down always. */
async function upToReady(label: string, opts: Omit<TestbedUpOptions, 'dir' | 'nodes'>, during?: (tb: TestbedState) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), `vl-bench-tb-${opts.full ? 'full' : 'ns'}-`));
  const dir = join(base, 'tb');
  try {
    const t0 = Date.now();
    const tb = await testbedUp({ nodes: NODES, dir, ...opts });
    const tUp = (Date.now() - t0) / 1000;
    say(`${label}: up returned (every node's sshd answering) after ${tUp.toFixed(1)} s`);
    await during?.(tb);
    const manager = await startNodesManager(base, join(dir, 'physicalnodes.yaml'), opts.full ? { sshTimeoutSeconds: 120 } : {});
    try {
      await manager.waitReady(tb.nodes.map((n) => n.name), READY_LIMIT_S * 1000);
      say(`${label}: ${NODES} nodes Ready in vc-manager ${((Date.now() - t0) / 1000).toFixed(1)} s after up started`);
    } catch (e) {
      say(`${label}: NOT all Ready ${((Date.now() - t0) / 1000).toFixed(1)} s after up started: ${(e as Error).message}`);
    } finally {
      await manager.stop();
    }
  } finally {
    await testbedDown(dir).catch((e) => say(`${label}: down failed: ${(e as Error).message}`));
    await rm(base, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  say(`machine: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const t0 = Date.now();
  const image = buildNodeImage({ log: (m) => say(`node-image: ${m}`) });
  say(`node image: ${image.cached ? 'cached' : 'built'} in ${((Date.now() - t0) / 1000).toFixed(1)} s (kernel ${image.kernelVersion}, Xen ${image.xenVersion})`);
  if (!values['skip-namespace']) await upToReady('namespace testbed (baseline)', {});
  const memoryMiB = values['node-memory-mib'] ? Number(values['node-memory-mib']) : undefined;
  await upToReady('full testbed', { full: { memoryMiB, bootTimeoutMs: 600_000 } }, async (tb) => {
    const rss = await Promise.all(tb.nodes.map((n) => rssMiB(n.full!.qemuPid)));
    // (measured when up returns, before the manager's probes)
    const total = rss.reduce((a, b) => a + b, 0);
    say(`full testbed: QEMU resident memory per node ${rss.join(' / ')} MiB (guest memory ${tb.full!.memoryMiB} MiB, dom0 ${tb.full!.dom0MiB} MiB); ${total} MiB for ${NODES} nodes`);
  });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench-testbed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
