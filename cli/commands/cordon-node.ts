// Shared by vcctl cordon and uncordon: set PhysicalNode spec.unschedulable, retrying on conflict.

import { ConflictError, type Store } from '../../api/store/types.js';
import type { PhysicalNode } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { withStore } from '../store.js';

/** Sets spec.unschedulable; returns whether it changed. */
export async function setUnschedulable(store: Store, name: string, value: boolean): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    const pn = await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name });
    if (!pn?.spec) throw new Error(`physicalnode "${name}" not found; see "vcctl get pn"`);
    if ((pn.spec.unschedulable === true) === value) return false;
    try {
      await store.update<PhysicalNode>({ ...pn, spec: { ...pn.spec, unschedulable: value } });
      return true;
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= 5) throw err;
    }
  }
}

export function cordonCommand(value: boolean): Command {
  const verb = value ? 'cordon' : 'uncordon';
  const done = value ? 'cordoned' : 'uncordoned';
  return {
    summary: value ? 'Mark PhysicalNodes unschedulable' : 'Mark PhysicalNodes schedulable again',
    usage: `Usage: vcctl ${verb} NODE...\n\nSets spec.unschedulable of each PhysicalNode to ${value}. ${value
      ? 'VMs already there stay; see "vcctl drain" to move them.'
      : 'VirtualClusters waiting for room are placed again.'}`,
    async run(argv: string[], ctx: CommandContext) {
      const args = parseArgs(argv, {});
      const names = args.positionals.map((n) => n.replace(/^(pn|physicalnode|physicalnodes)\//, ''));
      if (names.length === 0) throw new UsageError(`name the node: vcctl ${verb} NODE`);
      return withStore(args, ctx, async (store) => {
        for (const n of names) {
          const changed = await setUnschedulable(store, n, value);
          ctx.stdout.write(`physicalnode/${n} ${changed ? done : `already ${done}`}\n`);
        }
        return 0;
      });
    },
  };
}
