// What the high-availability end-to-end tests (test/e2e/ha*.e2e.test.ts) read from a running
// cluster harness: where each VM's QEMU runs (from /proc, through every testbed node's network
// namespace, so it also sees a cut-off node's processes), a sampler of the most copies of each VM
// ever seen at once, a VM's restart elsewhere up to its READY line, and a fenced node's recovery.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { EventObject, PhysicalNode, VirtualNode } from '../../api/types.js';
import { namespacePids } from '../../drivers/fencing/testbed-agent.js';
import { healNode } from '../../hack/lib/testbed-faults.js';
import { waitFor } from '../controllers/helpers.js';

/** The VC both files run: two small VMs, Cyclic, so one per node on a fresh three-node testbed. */
export const HA_VC = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ha, namespace: default}
spec:
  nodes: 2
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
`;
export const HA_VMS = ['ha-0', 'ha-1'];

/** What a suite's tests use: the cluster (set by `before`), and the sampler the hooks stop. */
export interface HaSuite {
  readonly cluster: HaCluster;
  sampler: CopySampler | undefined;
}

/**
 * Registers the suite's mocha hooks: `before` starts a three-node harness (a vc-manager with
 * --node-failure-grace 10 and probes every 2 s) and waits for the VC `ha` Ready; `afterEach`
 * stops the sampler and, after a failure, prints the cluster; `after` tears everything down.
 */
export function haSuite(): HaSuite {
  const suite: { cluster?: HaCluster; sampler?: CopySampler } = {};
  let h: ClusterHarness | undefined;
  before(async function () {
    this.timeout(12 * 60_000);
    h = await startClusterHarness({
      nodes: 3, cores: 2, memoryMiB: 1024,
      managerArgs: ['--orphan-grace', '5', '--node-failure-grace', '10', '--node-probe-interval', '2'],
    });
    suite.cluster = new HaCluster(h);
    const a = await h.vcctl(['apply', '-f', '-'], HA_VC);
    assert.equal(a.code, 0, a.stderr);
    const w = await h.vcctl(['wait', 'vc/ha', '--for=condition=Ready', '--timeout=10m']);
    assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', 'vc/ha'])).stdout);
  });
  after(async () => {
    suite.sampler?.stop();
    await h?.stop();
  });
  afterEach(async function () {
    suite.sampler?.stop();
    if (this.currentTest?.state === 'failed' && suite.cluster) await suite.cluster.dump();
  });
  return suite as HaSuite;
}

/** The number of QEMU processes per VM domain seen at each sample, and the most ever seen at once. */
export class CopySampler {
  readonly maxCopies = new Map<string, number>();
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly ha: HaCluster, private readonly domains: readonly string[], private readonly everyMs = 300) {}

  start(): this {
    this.maxCopies.clear();
    this.samples = 0;
    this.stopped = false;
    const tick = async (): Promise<void> => {
      for (const d of this.domains) {
        const c = (await this.ha.copiesOf(d)).length;
        this.maxCopies.set(d, Math.max(this.maxCopies.get(d) ?? 0, c));
      }
      this.samples++;
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.everyMs);
    };
    void tick();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Asserts that no sample saw more than one copy of any VM. */
  assertNeverTwice(): void {
    assert.ok(this.samples > 0, 'the sampler took no sample');
    for (const d of this.domains) assert.ok((this.maxCopies.get(d) ?? 0) <= 1, `${d} ran twice at a sample (${this.maxCopies.get(d)} copies)`);
  }
}

export class HaCluster {
  constructor(readonly h: ClusterHarness, readonly namespace = 'default') {}

  vn(name: string): Promise<VirtualNode> {
    return this.h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: this.namespace, name });
  }

  pn(name: string): Promise<PhysicalNode> {
    return this.h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  }

  async logs(name: string): Promise<string> {
    return (await this.h.vcctl(['logs', `vn/${name}`])).stdout;
  }

  /** Nodes whose namespace holds a QEMU of `domain` (read from /proc: works for cut-off nodes). */
  async copiesOf(domain: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of this.h.testbed.nodes) {
      for (const pid of (await namespacePids(n.netns)) ?? []) {
        let argv: string[] = [];
        try {
          argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        } catch {
          continue;
        }
        if (/qemu-system/.test(argv[0] ?? '') && argv.some((a) => a.includes(domain))) {
          out.push(n.name);
          break;
        }
      }
    }
    return out;
  }

  sampler(vms: readonly string[], everyMs?: number): CopySampler {
    return new CopySampler(this, vms.map((v) => `${this.namespace}.${v}`), everyMs);
  }

  /**
   * Waits for `name` Running (the runtime's status, host included) on a node not in `lost`, then for its READY line on the new console;
   * asserts exactly one copy, on its node. Returns seconds from `t0` to Running and to READY.
   */
  async restartedElsewhere(name: string, lost: readonly string[], t0: number): Promise<{ runningS: number; readyS: number; node: string }> {
    await waitFor(`${name} Running off ${lost.join(', ')}`, async () => {
      const v = await this.vn(name);
      // Running as the runtime wrote it for the new node (status.host): right after the unbinding
      // the old status (phase Running on the lost node) is still there.
      const at = v.spec?.physicalNode;
      return v.status?.phase === 'Running' && !!at && v.status.host === at && !lost.includes(at);
    }, 240_000, 250);
    const runningS = (Date.now() - t0) / 1000;
    const v = await this.vn(name);
    const marker = `VIRTUALINUX-READY ${name} ${v.status?.ip}`;
    await waitFor(`${marker} on the new console`, async () => (await this.logs(name)).includes(marker), 240_000, 1000);
    const readyS = (Date.now() - t0) / 1000;
    assert.deepEqual(await this.copiesOf(`${this.namespace}.${name}`), [v.spec!.physicalNode]);
    return { runningS, readyS, node: v.spec!.physicalNode! };
  }

  async events(node: string, reason: string): Promise<EventObject[]> {
    return (await this.h.store.list<EventObject>('Event')).items.filter((e) => e.spec?.involvedObject.name === node && e.spec.reason === reason);
  }

  async isFenced(node: string): Promise<boolean> {
    return (await this.pn(node)).status?.conditions?.some((x) => x.type === 'Fenced' && x.status === 'True') ?? false;
  }

  /** Asserts `node` fenced: condition True, cordoned, a Fenced Event. */
  async assertFenced(node: string): Promise<void> {
    const p = await this.pn(node);
    assert.equal(p.status?.conditions?.find((x) => x.type === 'Fenced')?.status, 'True', `${node} Fenced`);
    assert.equal(p.spec?.unschedulable, true, `${node} cordoned`);
    assert.ok((await this.events(node, 'Fenced')).length >= 1, `a Fenced Event for ${node}`);
  }

  /** hack/testbed heal, vcctl uncordon, then Ready and no longer fenced. */
  async recover(node: string): Promise<void> {
    await healNode(this.h.testbed.dir, node);
    const r = await this.h.vcctl(['uncordon', node]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${node} Ready and no longer fenced`, async () => {
      const c = (await this.pn(node)).status?.conditions ?? [];
      return c.some((x) => x.type === 'Ready' && x.status === 'True') && !c.some((x) => x.type === 'Fenced' && x.status === 'True');
    }, 180_000, 500);
  }

  /** Prints the cluster's objects and events (after a failed test). */
  async dump(): Promise<void> {
    const r = await this.h.vcctl(['get', 'vc,vn,pn', '-o', 'wide']);
    console.log(r.stdout, r.stderr, (await this.h.vcctl(['events'])).stdout, `manager log: ${this.h.managerLog}`);
  }
}
