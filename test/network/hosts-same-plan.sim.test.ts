// SIMULATION (sim hosts, drivers/transport/sim-*.ts: route tables as state, no packet moves): a
// node whose plan is the same as its last complete apply, within the drift-check spacing, is not
// sent its commands again (hack/bench-scale: each VM started made the paced refresh re-plan every
// node, and at 10,000 VMs a sim node's apply listed 10,000 routes and its nftables table twice
// for a plan that had not changed). A plan that changed is applied; hostStateDigest sees every part.

import assert from 'node:assert/strict';
import type { VirtualCluster, VirtualNode } from '../../api/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { hostStateDigest } from '../../reconcilers/network/controller.js';
import type { HostNetworkState } from '../../reconcilers/network/host-plan.js';
import { eventually, virtualCluster } from '../placement/fixtures.js';
import { startSimHosts, type SimHosts } from './sim-hosts-fixture.js';

/** `t` with its applies counted: the driver lists the node's routes once per apply. */
function countingApplies(applies: Map<string, number>, node: string, t: Transport): Transport {
  return new Proxy(t, {
    get(target, prop) {
      if (prop === 'exec') {
        return (argv: readonly string[], opts?: unknown) => {
          if (argv.join(' ').startsWith('ip -j route show')) applies.set(node, (applies.get(node) ?? 0) + 1);
          return (target.exec as (a: readonly string[], o?: unknown) => unknown).call(target, argv, opts);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('network/hosts sends a node no commands for a plan it applied already (sim hosts)', function () {
  this.timeout(60_000);
  let h: SimHosts;
  const applies = new Map<string, number>();
  /** Reconciles per node that got as far as the node's transport (every Ready node's reconcile). */
  const plans = new Map<string, number>();

  it('hostStateDigest differs for a change of any part', () => {
    const s: HostNetworkState = {
      taps: [{ name: 'vt0123456789', vm: 'default.a-0', mac: '52:54:00:00:00:02', gateway: '10.0.0.1', gatewayMac: '52:54:00:00:00:01', ip: '10.0.0.2' }],
      routes: [{ dest: '10.0.0.2/32', dev: 'vt0123456789' }, { dest: '10.0.0.3/32', via: '198.18.5.2' }],
      nftRuleset: 'table inet virtualinux { }', nftRuleComments: ['antispoof'], nfsExports: [],
    };
    const d = hostStateDigest(s);
    assert.equal(hostStateDigest(structuredClone(s)), d);
    assert.notEqual(hostStateDigest({ ...s, routes: [s.routes[0]!, { dest: '10.0.0.3/32', via: '198.18.5.3' }] }), d);
    assert.notEqual(hostStateDigest({ ...s, routes: [s.routes[0]!] }), d);
    assert.notEqual(hostStateDigest({ ...s, nftRuleset: 'table inet virtualinux { x }' }), d);
    assert.notEqual(hostStateDigest({ ...s, nftRuleComments: [] }), d);
    assert.notEqual(hostStateDigest({ ...s, taps: [] }), d);
    assert.notEqual(hostStateDigest({ ...s, nfsExports: [{ pseudo: '/vc', path: '/san/x', clients: '10.0.0.0/29' } as HostNetworkState['nfsExports'][number]] }), d);
  });

  before(async () => {
    h = await startSimHosts('vl-net-same-', [['n1', '198.18.6.1'], ['n2', '198.18.6.2'], ['n3', '198.18.6.3']], (node, t) => {
      plans.set(node, (plans.get(node) ?? 0) + 1);
      return countingApplies(applies, node, t);
    });
  });
  after(async () => {
    await h?.close();
  });

  it('a change every node re-plans for but that leaves n3\'s plan as it was sends n3 nothing; one that changes it does', async () => {
    await h.store.create<VirtualCluster>({ ...virtualCluster('s', 2, 1, 256), spec: { ...virtualCluster('s', 2, 1, 256).spec!, network: { subnet: '10.79.0.0/29' } } });
    await eventually(async () => ((await h.store.list('VirtualNode')).items.length === 2 ? true : undefined), 20_000, 'the VMs');
    await h.bind('s-0', 'n1');
    await h.bind('s-1', 'n2');
    await h.expectRoutes('n3', { '10.79.0.2': '198.18.6.1', '10.79.0.3': '198.18.6.2' }, 'both routed to their nodes');
    // Settled: no reconcile of n3 is left from the bindings.
    let seen = -1;
    await eventually(async () => {
      const now = applies.get('n3') ?? 0;
      const same = now === seen;
      seen = now;
      if (same) return true;
      await new Promise((r) => setTimeout(r, 1_500));
      return undefined;
    }, 30_000, 'n3 settled');
    const before = applies.get('n3') ?? 0;
    const plansBefore = plans.get('n3') ?? 0;
    // s-0 reported running on its node: its network (host) is as it was, so no node is re-planned.
    const v0 = await h.vm('s-0');
    await h.store.updateStatus<VirtualNode>({ ...v0, status: { ...v0.status, host: 'n1' } });
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(plans.get('n3') ?? 0, plansBefore, 'a VM started on the node it is bound to re-plans no other node');
    assert.equal(applies.get('n3') ?? 0, before);
    // s-0 marked for deletion (a finalizer holds it): a change network/hosts reads, so every node is
    // re-planned, but n3's routes stay as they are (the VM still runs until it is gone).
    const v0b = await h.vm('s-0');
    await h.store.update<VirtualNode>({ ...v0b, metadata: { ...v0b.metadata, finalizers: ['test.virtualinux.org/hold'] } });
    await h.store.delete({ kind: 'VirtualNode', namespace: 'default', name: 's-0' });
    assert.ok((await h.vm('s-0')).metadata.deletionTimestamp, 'held by its finalizer');
    await eventually(async () => ((plans.get('n3') ?? 0) > plansBefore ? true : undefined), 20_000, 'n3 re-planned');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(applies.get('n3') ?? 0, before, 'no apply on n3 for a plan it has');
    // s-1 moves to n1: n3's routes change (n1 now holds both VMs of s: one route to its subnet
    // through n1), and are applied.
    const v1 = await h.vm('s-1');
    await h.store.updateStatus<VirtualNode>({ ...v1, status: { ...v1.status, host: 'n1' } });
    await h.expectRoutes('n3', { '10.79.0.0/29': '198.18.6.1' }, 's-1 moved to n1');
    assert.ok((applies.get('n3') ?? 0) > before, 'the changed plan applied');
  });
});
