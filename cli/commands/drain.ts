// vcctl drain NODE: cordon NODE, re-place every VM bound to it with its VC's strategy and mode on
// the other nodes, and ask for live migrations (Migration objects the runtime performs). The
// Migrations and the room they reserve on their targets (status.allocated) are written in one
// transaction guarded by the targets' resourceVersions, so a VC placed meanwhile cannot take it.

import { API_VERSION, type Migration, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { ConflictError, type BatchOp, type Store } from '../../api/store/types.js';
import { planDrain, reservations, type DrainMove } from '../../reconcilers/placement/preview.js';
import { addUsage, ZERO } from '../../reconcilers/placement/plan-binding.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { withStore } from '../store.js';
import { physicalNodeName, setUnschedulable } from './cordon-node.js';
import { CLUSTER_LABEL } from '../../api/labels.js';

const USAGE = `Usage: vcctl drain NODE [--dry-run]

Cordons NODE, then re-places each VM bound to it with its VirtualCluster's placement on the other
nodes and creates a Migration for each (the runtime live-migrates them). Prints what it created.
If some VMs fit nowhere, nothing is created, the reasons are printed and the exit code is 1
(NODE stays cordoned). VMs with a Migration already in flight are left alone.

  --dry-run   print the moves without cordoning or creating anything`;

function migrationName(m: DrainMove, stamp: string): string {
  const suffix = `-drain-${stamp}`;
  return `${m.vn.metadata.name.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`;
}

function migrationFor(m: DrainMove, stamp: string): Migration {
  const owner = m.vn.metadata.ownerReferences?.find((r) => r.kind === 'VirtualCluster');
  return {
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: {
      name: migrationName(m, stamp),
      namespace: m.vn.metadata.namespace,
      labels: { [CLUSTER_LABEL]: m.vn.spec!.cluster, 'virtualinux.org/drain': m.from },
      ...(owner ? { ownerReferences: [{ ...owner, controller: false }] } : {}),
    },
    spec: { virtualNode: m.vn.metadata.name, targetNode: m.to },
  };
}

async function readState(store: Store) {
  const [pns, vns, vcs, migrations] = await Promise.all([
    store.list<PhysicalNode>('PhysicalNode'),
    store.list<VirtualNode>('VirtualNode'),
    store.list<VirtualCluster>('VirtualCluster'),
    store.list<Migration>('Migration'),
  ]);
  return { pns: pns.items, vns: vns.items, vcs: vcs.items, migrations: migrations.items };
}

const command: Command = {
  summary: 'Cordon a PhysicalNode and live-migrate its VMs elsewhere',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { 'dry-run': { type: 'boolean' } });
    if (args.positionals.length !== 1) throw new UsageError('name one node: vcctl drain NODE');
    const node = physicalNodeName(args.positionals[0]!);
    const dryRun = args.bool('dry-run');
    return withStore(args, ctx, async (store) => {
      if (!(await store.tryGet({ kind: 'PhysicalNode', name: node }))) {
        throw new Error(`physicalnode "${node}" not found; see "vcctl get pn"`);
      }
      if (!dryRun) {
        const changed = await setUnschedulable(store, node, true);
        ctx.stdout.write(`physicalnode/${node} ${changed ? 'cordoned' : 'already cordoned'}\n`);
      }
      const stamp = Date.now().toString(36);
      for (let attempt = 1; ; attempt++) {
        const state = await readState(store);
        const plan = planDrain(node, state);
        for (const vn of plan.inFlight) ctx.stdout.write(`virtualnode/${vn.metadata.name} already migrating; left alone\n`);
        if (plan.refused.length > 0) {
          for (const r of plan.refused) ctx.stderr.write(`error: virtualcluster ${r.namespace}/${r.cluster}: ${r.message}\n`);
          ctx.stderr.write(`error: nothing was migrated; make room (uncordon or add PhysicalNodes) and drain again\n`);
          return 1;
        }
        if (dryRun) {
          for (const m of plan.moves) ctx.stdout.write(`virtualnode/${m.vn.metadata.name}: ${m.from} -> ${m.to} (dry run)\n`);
          return 0;
        }
        if (plan.moves.length === 0) {
          ctx.stdout.write(`physicalnode/${node} drained: no VMs to move\n`);
          return 0;
        }
        const byName = new Map(state.pns.map((p) => [p.metadata.name, p]));
        const ops: BatchOp[] = plan.moves.map((m) => ({ op: 'create', object: migrationFor(m, stamp) }));
        for (const [target, add] of reservations(plan.moves)) {
          const pn = byName.get(target)!;
          ops.push({ op: 'updateStatus', object: { ...pn, status: { ...pn.status, allocated: addUsage(pn.status?.allocated ?? ZERO, add) } } });
        }
        try {
          await store.batch(ops);
        } catch (err) {
          if (err instanceof ConflictError && attempt < 5) continue;
          throw err;
        }
        for (const m of plan.moves) {
          ctx.stdout.write(`migration/${migrationName(m, stamp)} created (virtualnode/${m.vn.metadata.name}: ${m.from} -> ${m.to})\n`);
        }
        return 0;
      }
    });
  },
};

export default command;
