// vcctl plan -f FILE [-o json]: placement preview of the VirtualClusters in FILE (API.md), no writes.

import { loadManifests } from '../../api/input/index.js';
import type { Migration, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { previewPlacement } from '../../reconcilers/placement/preview.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { namespaceOf } from '../kinds-arg.js';
import { withStore } from '../store.js';

const USAGE = `Usage: vcctl plan -f FILE|DIR|- [-R] [-o json]

Shows where the VirtualClusters in FILE would be placed, against the stored PhysicalNodes and
what is already bound to them, plus any PhysicalNodes in FILE (taken as Ready, nothing bound).
VirtualClusters are placed in file order, each seeing the ones before it. Writes nothing.

  -f, --filename PATH   manifests (repeatable)
  -R, --recursive       read directories recursively
  -o, --output json     {"clusters":[{name, namespace, schedulable, placements, reasons}]}`;

const command: Command = {
  summary: 'Preview the placement of the VirtualClusters in a file (no writes)',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, {
      filename: { type: 'string', short: 'f', multiple: true },
      recursive: { type: 'boolean', short: 'R' },
      output: { type: 'string', short: 'o' },
    });
    const files = args.strs('filename');
    if (files.length === 0) throw new UsageError('give the manifests with -f FILE|DIR|-');
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const output = args.str('output');
    if (output !== undefined && output !== 'json') throw new UsageError(`-o must be json, got "${output}"`);
    const manifests = await loadManifests(files, {
      recursive: args.bool('recursive'), stdin: ctx.stdin, namespace: namespaceOf(args),
      enforceNamespace: args.namespace !== undefined,
    });
    const vcs = manifests.filter((m) => m.defaulted.kind === 'VirtualCluster').map((m) => m.defaulted as VirtualCluster);
    const filePns = manifests.filter((m) => m.defaulted.kind === 'PhysicalNode').map((m) => m.defaulted as PhysicalNode);
    if (vcs.length === 0) throw new UsageError(`no VirtualCluster in ${files.join(', ')}: nothing to plan`);
    return withStore(args, ctx, async (store) => {
      const [pns, vns, migrations] = await Promise.all([
        store.list<PhysicalNode>('PhysicalNode'),
        store.list<VirtualNode>('VirtualNode'),
        store.list<Migration>('Migration'),
      ]);
      const preview = previewPlacement(
        { pns: pns.items, vns: vns.items, migrations: migrations.items },
        { pns: filePns, vcs },
      );
      if (output === 'json') {
        ctx.stdout.write(`${JSON.stringify(preview, null, 2)}\n`);
        return 0;
      }
      for (const c of preview.clusters) {
        ctx.stdout.write(`virtualcluster/${c.name} (namespace ${c.namespace}): ${c.schedulable ? 'schedulable' : 'UNSCHEDULABLE'}\n`);
        if (c.placements.length > 0) {
          const w = Math.max('VIRTUALNODE'.length, ...c.placements.map((p) => p.virtualNode.length));
          ctx.stdout.write(`  ${'VIRTUALNODE'.padEnd(w)}  PHYSICALNODE\n`);
          for (const p of c.placements) ctx.stdout.write(`  ${p.virtualNode.padEnd(w)}  ${p.physicalNode}\n`);
        }
        const reasons = Object.entries(c.reasons);
        if (reasons.length > 0) {
          ctx.stdout.write(`  ${c.schedulable ? 'nodes not used' : 'refused by'}:\n`);
          for (const [n, why] of reasons) ctx.stdout.write(`    ${n}: ${why}\n`);
        }
      }
      return preview.clusters.every((c) => c.schedulable) ? 0 : 1;
    });
  },
};

export default command;
