// The node-failure plan (reconcilers/ha/plan.ts) against a simulated world, with random failure
// sequences (fast-check): nodes killed (powered off), cut off (link down, their VMs still running),
// healed; fences that work or fail; managers that crash between the power-off and the store batch;
// placement and a runtime that starts a bound VM wherever its node answers. The world, not the
// plan, counts the copies: at every step no VM runs twice, nothing is unbound from a node that
// is not powered off, and at the end every VM asking for restart runs exactly once when a node is
// left for it and every lost node can be fenced.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Condition } from '../../api/types.js';
import { planHa, planNeedsVms, type HaInput, type HaVm } from '../../reconcilers/ha/plan.js';

interface SimNode {
  name: string;
  power: boolean;
  link: boolean;
  fenceWorks: boolean;
  unschedulable: boolean;
  ready?: Condition;
  fenced?: Condition;
}
interface SimVm {
  name: string;
  ha: 'restart' | 'none';
  bound?: string;
  copies: Set<string>;
}

const GRACE = 10_000;
const cond = (type: string, status: 'True' | 'False', reason: string, now: number, prev?: Condition): Condition => ({
  type, status, reason, message: '', lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : new Date(now).toISOString(),
});

class World {
  now = Date.parse('2026-01-01T00:00:00Z');
  nodes: SimNode[];
  vms: SimVm[];
  constructor(nNodes: number, has: ('restart' | 'none')[], fenceWorks: boolean[]) {
    this.nodes = Array.from({ length: nNodes }, (_, i) => ({ name: `n${i}`, power: true, link: true, fenceWorks: fenceWorks[i] ?? true, unschedulable: false }));
    this.vms = has.map((ha, i) => ({ name: `vm${i}`, ha, copies: new Set<string>() }));
    this.probe();
    this.place();
    this.runtime();
  }
  node(n: string): SimNode { return this.nodes.find((x) => x.name === n)!; }
  reachable(n: SimNode): boolean { return n.power && n.link; }
  probe(): void {
    for (const n of this.nodes) {
      const ok = this.reachable(n);
      if (ok && n.fenced?.status === 'True' && n.ready?.status !== 'True') {
        for (const v of this.vms) v.copies.delete(n.name); // beforeReady: stale domains stopped
      }
      n.ready = cond('Ready', ok ? 'True' : 'False', ok ? 'Probed' : 'Unreachable', this.now, n.ready);
    }
  }
  place(): void {
    this.vms.forEach((v, i) => {
      if (v.bound) return;
      const ok = this.nodes.filter((n) => n.ready?.status === 'True' && !n.unschedulable && n.fenced?.status !== 'True');
      if (ok.length) v.bound = ok[i % ok.length]!.name;
    });
  }
  runtime(): void {
    for (const v of this.vms) {
      if (!v.bound) continue;
      const n = this.node(v.bound);
      if (this.reachable(n) && n.fenced?.status !== 'True' && !v.copies.has(n.name)) v.copies.add(n.name);
    }
  }
  kill(i: number): void {
    const n = this.nodes[i % this.nodes.length]!;
    n.power = false;
    for (const v of this.vms) v.copies.delete(n.name);
  }
  heal(i: number): void {
    const n = this.nodes[i % this.nodes.length]!;
    n.power = true;
    n.link = true;
  }
  ha(i: number, crash: boolean): void {
    const n = this.nodes[i % this.nodes.length]!;
    const vms: HaVm[] = this.vms.filter((v) => v.bound === n.name).map((v) => ({ name: v.name, namespace: 'default', ha: v.ha }));
    const d = planHa({ node: n.name, hasFencingAgent: true, unschedulable: n.unschedulable, ready: n.ready, fenced: n.fenced, vms, graceMs: GRACE, nowMs: this.now });
    const unbind = (list: HaVm[]) => {
      assert.equal(n.power, false, `unbinding from ${n.name} while it is powered on`);
      for (const h of list) this.vms.find((v) => v.name === h.name)!.bound = undefined;
    };
    switch (d.type) {
      case 'fence':
        if (!n.fenceWorks) {
          n.fenced = cond('Fenced', 'False', 'FencingFailed', this.now, n.fenced);
          return;
        }
        this.kill(i); // the agent's power-off, confirmed by its status (power false)
        if (crash) return; // the manager dies before its writes
        n.unschedulable = true;
        n.fenced = cond('Fenced', 'True', 'Fenced', this.now, n.fenced);
        unbind(d.unbind);
        return;
      case 'unbind':
        unbind(d.unbind);
        return;
      case 'clear':
        n.fenced = cond('Fenced', 'False', 'Recovered', this.now, n.fenced);
        return;
      default:
        return;
    }
  }
  check(): void {
    for (const v of this.vms) assert.ok(v.copies.size <= 1, `${v.name} runs on ${[...v.copies].join(' and ')}`);
  }
}

const step = fc.oneof(
  fc.record({ t: fc.constant('kill' as const), i: fc.nat(5) }),
  fc.record({ t: fc.constant('partition' as const), i: fc.nat(5) }),
  fc.record({ t: fc.constant('heal' as const), i: fc.nat(5) }),
  fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 15_000 }) }),
  fc.record({ t: fc.constant('probe' as const) }),
  fc.record({ t: fc.constant('ha' as const), i: fc.nat(5), crash: fc.boolean() }),
  fc.record({ t: fc.constant('place' as const) }),
  fc.record({ t: fc.constant('runtime' as const) }),
  fc.record({ t: fc.constant('uncordon' as const), i: fc.nat(5) }),
);

function run(w: World, steps: readonly object[]): void {
  for (const s of steps as { t: string; i?: number; ms?: number; crash?: boolean }[]) {
    const n = w.nodes[(s.i ?? 0) % w.nodes.length]!;
    switch (s.t) {
      case 'kill': w.kill(s.i!); break;
      case 'partition': n.link = false; break;
      case 'heal': w.heal(s.i!); break;
      case 'tick': w.now += s.ms!; break;
      case 'probe': w.probe(); break;
      case 'ha': w.ha(s.i!, s.crash!); break;
      case 'place': w.place(); break;
      case 'runtime': w.runtime(); break;
      case 'uncordon': n.unschedulable = false; break;
    }
    w.check();
  }
}

/** Runs every controller until the world settles (no failures injected). */
function settle(w: World): void {
  for (let r = 0; r < 6; r++) {
    w.now += GRACE + 1;
    w.probe();
    w.nodes.forEach((_, i) => w.ha(i, false));
    w.probe();
    w.place();
    w.runtime();
    w.check();
  }
}

const worldArb = fc.record({
  nodes: fc.integer({ min: 2, max: 4 }),
  has: fc.array(fc.constantFrom('restart' as const, 'none' as const), { minLength: 1, maxLength: 5 }),
  fenceWorks: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
  steps: fc.array(step, { maxLength: 60 }),
});

describe('ha plan: random failure sequences', () => {
  it('never runs a VM twice and never unbinds from a node that is not off', () => {
    fc.assert(fc.property(worldArb, (p) => {
      const w = new World(p.nodes, p.has, p.fenceWorks);
      run(w, p.steps as never);
      settle(w);
    }), { numRuns: 400 });
  });

  it('restarts every restart VM exactly once when the lost nodes can be fenced and a node is left', () => {
    fc.assert(fc.property(worldArb, fc.nat(3), (p, survivor) => {
      const w = new World(p.nodes, p.has, [true, true, true, true]);
      run(w, p.steps as never);
      // one node certainly alive, uncordoned and unfenced (a user healed and uncordoned it)
      const keep = w.nodes[survivor % w.nodes.length]!;
      w.heal(survivor);
      keep.unschedulable = false;
      settle(w);
      for (const v of w.vms.filter((x) => x.ha === 'restart')) {
        assert.equal(v.copies.size, 1, `${v.name} (bound ${v.bound}) runs on ${[...v.copies].join(',') || 'nothing'}`);
      }
    }), { numRuns: 400 });
  });

  it('planNeedsVms: when it says no, the plan is the same whatever VMs the node has', () => {
    const condArb = (type: string) => fc.option(fc.record({ type: fc.constant(type), status: fc.constantFrom<'True' | 'False' | 'Unknown'>('True', 'False', 'Unknown'), reason: fc.constantFrom('Probed', 'Unreachable', 'Fenced', 'Recovered', 'FencingFailed', 'NoFencingAgent'), message: fc.constant(''), lastTransitionTime: fc.constant('2026-01-01T00:00:00Z') }), { nil: undefined });
    const vmArb = fc.record({ name: fc.constantFrom('a', 'b', 'c'), namespace: fc.constant('default'), ha: fc.constantFrom<HaVm['ha']>('restart', 'none', undefined) });
    fc.assert(fc.property(condArb('Ready'), condArb('Fenced'), fc.boolean(), fc.boolean(), fc.array(vmArb, { maxLength: 4 }), fc.nat(100_000), (ready, fenced, hasFencingAgent, unschedulable, vms, ago) => {
      const i: HaInput = { node: 'n', hasFencingAgent, unschedulable, ready, fenced, vms, graceMs: GRACE, nowMs: Date.parse('2026-01-01T00:00:00Z') + ago };
      if (planNeedsVms(i)) return;
      assert.deepEqual(planHa(i), planHa({ ...i, vms: [] }));
    }), { numRuns: 1000 });
  });

  it('a failing fence restarts nothing', () => {
    const w = new World(2, ['restart', 'restart'], [false, false]);
    const before = w.vms.map((v) => v.bound);
    assert.equal(w.vms[0]!.bound, 'n0');
    w.nodes[0]!.link = false; // cut off: its VMs still run
    for (let k = 0; k < 5; k++) { w.now += GRACE; w.probe(); w.ha(0, false); w.place(); w.runtime(); w.check(); }
    assert.deepEqual(w.vms.map((v) => v.bound), before);
    assert.equal(w.nodes[0]!.fenced?.reason, 'FencingFailed');
    assert.ok(w.vms.filter((v) => v.bound === 'n0').every((v) => v.copies.has('n0')));
  });
});
