// The ha controller on the embedded store (real SQLite) with a SIMULATED fencing agent (sim: it
// only records power; the real agents are tested in testbed-fencing.test.ts and, recorded, in
// ipmi-agent.recorded.test.ts): a confirmed fence cordons the node, writes Fenced and unbinds the
// restart VMs once; a fence whose status does not say off unbinds nothing; a manager that died
// after the power-off and before its writes is finished by a fresh one without a second unbind; the
// Fenced Event is written in the same batch as the condition.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, EventObject, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { silentLogger } from '../../controllers/log.js';
import type { ReconcileContext } from '../../controllers/types.js';
import type { FencingAgent, PowerState } from '../../drivers/fencing/types.js';
import { haController } from '../../reconcilers/ha/controller.js';

class SimAgent implements FencingAgent {
  readonly name = 'sim';
  power: 'on' | 'off' = 'on';
  offCalls = 0;
  constructor(private readonly works: boolean) {}
  async powerOff(): Promise<void> {
    this.offCalls++;
    if (this.works) this.power = 'off';
  }
  async status(): Promise<{ state: PowerState; detail: string }> {
    return { state: this.power, detail: `sim ${this.power}` };
  }
}

/** Ready=False since two minutes before now (at the call: mocha loads every file long before it runs this one). */
const longAgo = (): string => new Date(Date.now() - 120_000).toISOString();

describe('ha controller (embedded store, simulated agent)', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  const events: { name: string; type: string; reason: string }[] = [];

  async function ctx(): Promise<ReconcileContext> {
    const all = new Map<string, ApiObject[]>();
    for (const k of ['PhysicalNode', 'VirtualNode', 'VirtualCluster']) all.set(k, (await store.list(k)).items);
    return {
      store,
      cache: {
        get: <T extends ApiObject>(r: { kind: string; name: string; namespace?: string }) => all.get(r.kind)?.find((o) => o.metadata.name === r.name && (r.namespace === undefined || o.metadata.namespace === r.namespace)) as T | undefined,
        list: <T extends ApiObject>(k: string) => (all.get(k) ?? []) as T[],
      },
      events: { record: (o, type, reason) => { events.push({ name: o.metadata.name, type, reason }); } },
      log: silentLogger(),
      signal: new AbortController().signal,
    };
  }

  async function world(node: string, vcName: string, ha?: 'restart' | 'none'): Promise<void> {
    await store.create<PhysicalNode>({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'PhysicalNode', metadata: { name: node },
      spec: { address: '198.18.200.1', ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAA' }, capacity: { cores: 4, memoryMiB: 4096 }, hypervisor: 'qemu', storageRoot: '/san', fencing: { agent: 'testbed', testbedDir: '/nonexistent' } },
    });
    const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: node });
    await store.updateStatus<PhysicalNode>({ ...pn, status: { allocated: { cores: 2, memoryMiB: 256, vms: 2 }, conditions: [{ type: 'Ready', status: 'False', reason: 'Unreachable', message: 'gone', lastTransitionTime: longAgo() }] } });
    await store.create<VirtualCluster>({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster', metadata: { name: vcName, namespace: 'default' },
      spec: { nodes: 2, template: 't', node: { vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 0 }, placement: { strategy: 'Cyclic', mode: 'Lazy' }, state: 'Running', ...(ha ? { highAvailability: ha } : {}) },
    });
    for (const i of [0, 1]) {
      await store.create<VirtualNode>({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode', metadata: { name: `${vcName}-${i}`, namespace: 'default' }, spec: { cluster: vcName, index: i, physicalNode: node, vcpus: 1, memoryMiB: 128 } });
    }
  }
  const vns = async (vc: string) => (await store.list<VirtualNode>('VirtualNode')).items.filter((v) => v.spec?.cluster === vc);
  const pn = (n: string) => store.get<PhysicalNode>({ kind: 'PhysicalNode', name: n });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-ha-'));
    store = new SqliteStore(join(dir, 'store.db'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a confirmed fence: cordoned, Fenced, the restart VMs unbound with their room given back, once', async () => {
    await world('blade1', 'a');
    const agent = new SimAgent(true);
    const c = haController({ graceMs: 10_000, agentFor: () => agent });
    await c.reconcile({ kind: 'PhysicalNode', name: 'blade1' }, await ctx());
    const node = await pn('blade1');
    assert.equal(agent.power, 'off');
    assert.equal(node.spec?.unschedulable, true);
    assert.equal(getCondition(node.status?.conditions, 'Fenced')?.status, 'True');
    assert.deepEqual(node.status?.allocated, { cores: 0, memoryMiB: 0, vms: 0 });
    const list = await vns('a');
    assert.deepEqual(list.map((v) => v.spec?.physicalNode), [undefined, undefined]);
    const gens = list.map((v) => v.metadata.generation);
    // The Fenced Event is in the store although this context's recorder writes nothing there: it
    // was written in the fence's batch, so a manager killed right after the batch does not lose it.
    const fencedEvents = (await store.list<EventObject>('Event')).items.filter((e) => e.spec?.involvedObject.name === 'blade1' && e.spec.reason === 'Fenced');
    assert.equal(fencedEvents.length, 1);
    assert.equal(fencedEvents[0]!.spec?.type, 'Normal');
    assert.equal(fencedEvents[0]!.spec?.count, 1);
    assert.match(fencedEvents[0]!.spec!.message, /powered off by the testbed agent \(sim off\)/);
    assert.ok(!events.some((e) => e.name === 'blade1' && e.reason === 'Fenced'), 'not recorded a second time through the recorder');
    // again: nothing more to do
    await c.reconcile({ kind: 'PhysicalNode', name: 'blade1' }, await ctx());
    assert.deepEqual((await vns('a')).map((v) => v.metadata.generation), gens);
    assert.equal(agent.offCalls, 1);
  });

  it('a fence the agent does not confirm: FencingFailed, a Warning, nothing unbound; highAvailability none is left alone', async () => {
    await world('blade2', 'b');
    const agent = new SimAgent(false);
    const c = haController({ graceMs: 10_000, confirmTimeoutMs: 600, agentFor: () => agent });
    await c.reconcile({ kind: 'PhysicalNode', name: 'blade2' }, await ctx());
    const f = getCondition((await pn('blade2')).status?.conditions, 'Fenced');
    assert.equal(f?.status, 'False');
    assert.equal(f?.reason, 'FencingFailed');
    assert.match(f!.message, /status says on/);
    assert.ok(events.some((e) => e.name === 'blade2' && e.type === 'Warning' && e.reason === 'FencingFailed'));
    assert.deepEqual((await vns('b')).map((v) => v.spec?.physicalNode), ['blade2', 'blade2']);
    assert.notEqual((await pn('blade2')).spec?.unschedulable, true);

    await world('blade3', 'c', 'none');
    const other = new SimAgent(true);
    await haController({ graceMs: 10_000, agentFor: () => other }).reconcile({ kind: 'PhysicalNode', name: 'blade3' }, await ctx());
    assert.equal(other.offCalls, 0, 'no VM asks for a restart: no fence');
    assert.deepEqual((await vns('c')).map((v) => v.spec?.physicalNode), ['blade3', 'blade3']);
  });

  it('a Ready node is reconciled without gathering its VMs from the cache (bench-scale: every resync of 1,000 healthy nodes went over every VM)', async () => {
    await world('blade5', 'e');
    const p = await pn('blade5');
    await store.updateStatus<PhysicalNode>({ ...p, status: { ...p.status, conditions: [{ type: 'Ready', status: 'True', reason: 'Probed', message: 'ok', lastTransitionTime: longAgo() }] } });
    const agent = new SimAgent(true);
    const c = await ctx();
    const listed: string[] = [];
    const counting: ReconcileContext = { ...c, cache: { get: c.cache.get, list: <T extends ApiObject>(k: string) => { listed.push(k); return c.cache.list<T>(k); } } };
    const r = await haController({ graceMs: 10_000, agentFor: () => agent }).reconcile({ kind: 'PhysicalNode', name: 'blade5' }, counting);
    assert.equal(r, undefined);
    assert.deepEqual(listed, [], 'no list of the VMs for a healthy node');
    assert.equal(agent.offCalls, 0);
    assert.deepEqual((await vns('e')).map((v) => v.spec?.physicalNode), ['blade5', 'blade5']);
    // The same node NotReady past the grace: its VMs are gathered and it is fenced.
    const q = await pn('blade5');
    await store.updateStatus<PhysicalNode>({ ...q, status: { ...q.status, conditions: [{ type: 'Ready', status: 'False', reason: 'Unreachable', message: 'gone', lastTransitionTime: longAgo() }] } });
    const c2 = await ctx();
    const listed2: string[] = [];
    const counting2: ReconcileContext = { ...c2, cache: { get: c2.cache.get, list: <T extends ApiObject>(k: string) => { listed2.push(k); return c2.cache.list<T>(k); } } };
    await haController({ graceMs: 10_000, agentFor: () => agent }).reconcile({ kind: 'PhysicalNode', name: 'blade5' }, counting2);
    assert.deepEqual(listed2, ['VirtualNode']);
    assert.equal(agent.offCalls, 1);
    assert.deepEqual((await vns('e')).map((v) => v.spec?.physicalNode), [undefined, undefined]);
  });

  it('within the grace nothing happens; a manager that died after the power-off is finished by a new one', async () => {
    await world('blade4', 'd');
    const agent = new SimAgent(true);
    const early = await haController({ graceMs: 10 * 60_000, agentFor: () => agent }).reconcile({ kind: 'PhysicalNode', name: 'blade4' }, await ctx());
    assert.ok(early && early.requeueAfterMs > 0);
    assert.equal(agent.offCalls, 0);
    // the first manager powered the node off and died before writing anything
    await agent.powerOff();
    assert.deepEqual((await vns('d')).map((v) => v.spec?.physicalNode), ['blade4', 'blade4']);
    await haController({ graceMs: 10_000, agentFor: () => agent }).reconcile({ kind: 'PhysicalNode', name: 'blade4' }, await ctx());
    assert.deepEqual((await vns('d')).map((v) => v.spec?.physicalNode), [undefined, undefined]);
    assert.deepEqual((await vns('d')).map((v) => v.metadata.generation), [2, 2], 'each VM written once');
    assert.equal(getCondition((await pn('blade4')).status?.conditions, 'Fenced')?.status, 'True');
  });
});
